"""Forged messages that name real tasks (issue 13, item 2): nothing runs, each is counted.

Before: ``celery.starmap``/``celery.map`` ran a job task as a plain function,
so its processor ran with no job row; a message carrying a waiting job's id
ran the message's kwargs, not the row's. Now a worker runs only job tasks
(``tasks/worker/admission.py``), each from its claimed row
(``tasks/worker/task.py``). Messages are pushed straight into the broker, as
an attacker with broker access (or Flower's send-task) would.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from tasks.jobs.ids import new_job_id
from tasks.models import Job, JobLog, RejectedMessage
from tests.integration.helpers import wait_state
from tests.processes import wait_for
from tests.reliability.test_foreign_messages import _push, _task_headers
from tests.testapp.models import Execution

OURS = "analytics.record-analytics"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def _signature(task: str) -> dict:
    return {"task": task, "args": [], "kwargs": {}, "options": {}, "subtask_type": None,
            "immutable": False, "chord_size": None}


def _forge(task: str, job_id: str, args: list, kwargs: dict) -> None:
    _push(json.dumps([args, kwargs, EMBED]), "application/json", _task_headers(task, job_id))


def _waiting_row(key: str) -> str:
    """A waiting job whose own message has not gone out yet (the relay and reconciler
    leave it alone until a worker gives it back: ``published_at`` in the future)."""
    now = timezone.now()
    job = Job.objects.create(
        id=new_job_id(), queue="analytics", name="record-analytics", data={"key": key},
        state="waiting", max_attempts=2, created_at=now, enqueued_at=now - timedelta(minutes=1),
        published_at=now + timedelta(hours=1))
    return job.id


def test_forged_messages_naming_real_tasks_run_nothing_and_are_counted(service):
    mismatched = _waiting_row("row-data")
    other_task = _waiting_row("row-two")
    with_args = _waiting_row("row-three")
    forged = [
        # Celery's built-ins that call a job task as a function
        ("celery.starmap", "starmap-1", [], {"task": _signature(OURS), "it": [["starmapped"]]}),
        ("celery.map", "map-1", [], {"task": _signature(OURS), "it": ["mapped"]}),
        ("celery.chunks", "chunks-1", [], {"task": _signature(OURS), "it": [["chunked"]], "n": 1}),
        ("celery.group", "group-1", [], {"tasks": [_signature(OURS)], "args": ["grouped"]}),
        ("celery.backend_cleanup", "cleanup-1", [], {}),
        # a name nothing registers
        ("evil.run-anything", "unknown-1", [], {"key": "unknown"}),
        # a real job's id with other kwargs, another task, positional args, an invalid id
        (OURS, mismatched, [], {"key": "forged-data"}),
        ("analytics.slow", other_task, [], {"key": "row-two", "seconds": 0}),
        (OURS, with_args, ["forged-arg"], {"key": "row-three"}),
        (OURS, "bad\nid", [], {"key": "bad-id"}),
    ]
    for task, job_id, args, kwargs in forged:
        _forge(task, job_id, args, kwargs)

    wait_for(lambda: RejectedMessage.objects.count() >= len(forged), 30,
             message="every forged message to be counted")
    reasons = sorted(RejectedMessage.objects.values_list("reason", flat=True))
    assert reasons == sorted(["not-a-job-task"] * 5 + ["unknown-task", "data-mismatch",
                              "task-mismatch", "data-mismatch", "invalid-job-id"]), reasons
    details = " ".join(RejectedMessage.objects.values_list("detail", flat=True))
    assert "'celery.starmap'" in details and "bad\\nid" in details and "\n" not in details

    # Claimed, then given back: the real jobs still run, once each, from their rows
    # (published again by the relay).
    for job_id, key in ((mismatched, "row-data"), (other_task, "row-two")):
        job = wait_state(job_id, "completed")
        assert job.result == {"key": key} and job.attempts_made == 1
    assert JobLog.objects.filter(job_id=mismatched, message__contains="data-mismatch").exists()
    # Positional arguments are refused before the claim: that row was never touched.
    untouched = Job.objects.get(pk=with_args)
    assert (untouched.state, untouched.attempts_made, untouched.worker) == ("waiting", 0, "")
    keys = sorted(Execution.objects.values_list("key", flat=True))
    assert keys == ["row-data", "row-two"], keys
    assert RejectedMessage.objects.count() == len(forged)


def test_a_job_task_called_as_a_function_inside_a_worker_is_refused(service):
    from tasks.queues import QueueName, add_job

    job_id = add_job(QueueName.ANALYTICS, "calls-another-directly", {"key": "direct"})
    job = wait_state(job_id, "failed")
    assert job.attempts_made == 1, "refused at once, not retried"
    assert job.errors[-1]["error"].startswith(
        "DirectCallRefused: job task 'analytics.record-analytics' was called directly inside a "
        "worker")
    assert not Execution.objects.filter(key="direct").exists()
    assert list(RejectedMessage.objects.values_list("reason", flat=True)) == ["called-directly"]


def test_beat_refuses_a_schedule_that_names_anything_but_a_job(service, live_broker, tmp_path):
    """Beat is another door: a schedule edited to name ``celery.starmap`` sends nothing."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from tests import processes

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.create(name="forged", task="celery.starmap", interval=every_second,
                                kwargs=json.dumps({"task": _signature(OURS), "it": [["beat"]]}))
    PeriodicTask.objects.create(name="legit", task=OURS, interval=every_second,
                                kwargs=json.dumps({"key": "legit-beat"}))
    beat = processes.beat(live_broker, tmp_path, BEAT_MAX_LOOP_INTERVAL="1").start()
    try:
        wait_for(lambda: Execution.objects.filter(key="legit-beat").exists(), 30,
                 message=f"the legit schedule to run (log: {beat.log_path})")
        wait_for(lambda: "names task 'celery.starmap', which is not a job" in beat.log_text(),
                 10, message="beat to log the refusal")
    finally:
        beat.stop()
    assert not Execution.objects.exclude(key="legit-beat").exists()
    assert not RejectedMessage.objects.exists(), "refused at beat: nothing reached a worker"
