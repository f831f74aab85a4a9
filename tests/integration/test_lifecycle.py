"""Job lifecycle against a real worker, promoter and broker."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.db import transaction

from tasks.enqueue.publishing import message_for, publish, stamps_at_insert
from tasks.models import Job, Notification
from tasks.queues import JobPriority, QueueName, add_job, queue_registry
from tests.integration.helpers import queue_length, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution


def _gaps(job: Job) -> list[float]:
    """Seconds between each failed attempt and the start of the next one."""
    starts = [datetime.fromisoformat(e["started_at"]) for e in job.errors[1:]] + [job.started_at]
    fails = [datetime.fromisoformat(e["failed_at"]) for e in job.errors]
    return [(start - failed).total_seconds() for start, failed in zip(starts, fails, strict=True)]


def test_exponential_backoff_gaps_and_attempts(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "exp", "fail_times": 2},
                     attempts=3, backoff={"type": "exponential", "delay": 500})
    job = wait_state(job_id, "completed")
    assert job.attempts_made == 3
    assert len(job.errors) == 2
    assert Execution.objects.filter(key="exp").count() == 3
    gap1, gap2 = _gaps(job)
    assert 0.5 <= gap1 < 1.3, gap1
    assert 1.0 <= gap2 < 1.8, gap2


def test_fixed_backoff_waits_the_same_delay(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "fixed", "fail_times": 2},
                     attempts=5, backoff={"type": "fixed", "delay": 400})
    job = wait_state(job_id, "completed")
    assert job.attempts_made == 3
    for gap in _gaps(job):
        assert 0.4 <= gap < 1.2, gap


def test_custom_backoff_uses_the_task_strategy(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "custom-backoff", {"key": "custom"},
                     attempts=3, backoff={"type": "custom"})
    job = wait_state(job_id, "completed")
    gap1, gap2 = _gaps(job)
    assert 0.3 <= gap1 < 1.1 and 0.6 <= gap2 < 1.4, (gap1, gap2)


def test_retry_shows_as_delayed_until_the_next_attempt(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "delayed-retry", "fail_times": 1},
                     attempts=2, backoff={"type": "fixed", "delay": 3000})
    job = wait_state(job_id, "delayed", timeout=20)
    wait = (job.run_at - datetime.fromisoformat(job.errors[0]["failed_at"])).total_seconds()
    assert 2.9 <= wait <= 3.1, wait
    assert job.attempts_made == 1 and len(job.errors) == 1
    assert "TransientJobError" in job.errors[0]["error"]
    assert "Traceback" in job.errors[0]["traceback"]
    wait_state(job_id, "completed", timeout=20)


def test_last_failure_fails_the_job_and_calls_the_failure_hook(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "always-fails", {"key": "perm"},
                     attempts=2, backoff={"type": "fixed", "delay": 100})
    job = wait_state(job_id, "failed")
    assert job.attempts_made == 2
    assert [e["attempt"] for e in job.errors] == [1, 2]
    assert all("ConnectionError: upstream unreachable" in e["error"] for e in job.errors)
    assert job.finished_at is not None
    # The hook runs after the failed state is committed: wait for it.
    hook = wait_for(lambda: Notification.objects.filter(job_id=f"hook:{job_id}").first(), 10,
                    message="the failure hook")
    assert "upstream unreachable" in hook.message
    assert [j.id for j in queue_registry.get_queue(QueueName.DATA_PROCESSING).get_failed()] == [job_id]


FAST = {"type": "fixed", "delay": 100}


def test_any_exception_retries_until_the_attempts_run_out(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky",
                     {"key": "bug", "fail_times": 5, "error": "bug"}, attempts=3, backoff=FAST)
    job = wait_state(job_id, "failed")
    assert job.attempts_made == 3
    assert [e["exception"] for e in job.errors] == ["builtins.KeyError"] * 3


def test_a_permanent_error_fails_at_once(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky",
                     {"key": "hopeless", "fail_times": 5, "error": "permanent"}, attempts=5,
                     backoff=FAST)
    job = wait_state(job_id, "failed")
    assert job.attempts_made == 1
    assert job.errors[0]["exception"] == "tasks.jobs.errors.PermanentJobError"


def test_retry_on_narrows_what_retries(service):
    other = add_job(QueueName.DATA_PROCESSING, "narrow-retries", {"key": "value"}, attempts=4,
                    backoff=FAST)
    listed = add_job(QueueName.DATA_PROCESSING, "narrow-retries",
                     {"key": "connection", "error": "connection"}, attempts=2, backoff=FAST)
    assert wait_state(other, "failed").attempts_made == 1  # ValueError: not in retry_on
    assert wait_state(listed, "failed").attempts_made == 2


def test_delay_is_honoured_and_runs_once(service):
    before = time.monotonic()
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "delay"}, delay=2000)
    assert Job.objects.get(pk=job_id).state == "delayed"
    assert queue_length("data-processing") == 0  # nothing handed to the broker early
    job = wait_state(job_id, "completed", timeout=20)
    assert time.monotonic() - before >= 2.0
    assert (job.started_at - job.created_at) >= timedelta(seconds=2)
    time.sleep(0.5)
    assert Execution.objects.filter(key="delay").count() == 1


def test_rolled_back_transaction_sends_nothing(service):
    class Boom(Exception):
        pass

    try:
        with transaction.atomic():
            job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "rolled-back"})
            raise Boom
    except Boom:
        pass
    assert not Job.objects.filter(pk=job_id).exists()
    assert queue_length("data-processing") == 0
    committed = add_job(QueueName.DATA_PROCESSING, "record", {"key": "committed"})
    wait_state(committed, "completed")
    time.sleep(0.5)
    assert Execution.objects.filter(key="rolled-back").count() == 0
    assert Execution.objects.filter(key="committed").count() == 1


def test_publish_waits_for_commit(service):
    with transaction.atomic():
        job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "in-tx"})
        assert queue_length("data-processing") == 0  # not yet: the row is not committed
        # Redis: written stamped (the reconciler covers a crash before the publish);
        # other brokers: stamped after the publish.
        assert (Job.objects.get(pk=job_id).published_at is not None) == stamps_at_insert()
    # Published after commit, and run once. (``published_at`` may stay empty: a
    # fast worker can finish the job before the publisher marks it, and the mark
    # only matters while a job is waiting.)
    assert wait_state(job_id, "completed").attempts_made == 1


def test_duplicate_delivery_does_not_run_a_job_twice(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "dup", "sleep": 0.3})
    message = message_for(Job.objects.get(pk=job_id))
    publish([message])
    publish([message])
    wait_state(job_id, "completed")
    time.sleep(1.0)
    publish([message])  # a late redelivery of a finished job
    time.sleep(1.0)
    assert Execution.objects.filter(key="dup").count() == 1
    assert Job.objects.get(pk=job_id).attempts_made == 1


def test_job_id_deduplicates(service):
    first = add_job(QueueName.DATA_PROCESSING, "record", {"key": "dedup"}, job_id="report-2026-11-28")
    second = add_job(QueueName.DATA_PROCESSING, "record", {"key": "dedup"}, job_id="report-2026-11-28")
    assert first == second == "report-2026-11-28"
    wait_state(first, "completed")
    assert Job.objects.filter(pk="report-2026-11-28").count() == 1
    assert Execution.objects.filter(key="dedup").count() == 1


def test_counts_per_state(service):
    queue = queue_registry.get_queue(QueueName.DATA_PROCESSING)
    done = [add_job(QueueName.DATA_PROCESSING, "record", {"key": f"c{i}"}) for i in range(3)]
    failed = add_job(QueueName.DATA_PROCESSING, "always-fails", {"key": "cf"}, attempts=1)
    delayed = add_job(QueueName.DATA_PROCESSING, "record", {"key": "cd"}, delay=timedelta(hours=1),
                      priority=JobPriority.LOW)
    for job_id in done:
        wait_state(job_id, "completed")
    wait_state(failed, "failed")
    counts = queue.get_job_counts()
    assert counts == {"waiting": 0, "waiting-children": 0, "delayed": 1, "active": 0,
                      "completed": 3, "failed": 1, "cancelled": 0}
    assert queue.get_job(delayed).priority == JobPriority.LOW
    assert queue_registry.get_queue("email").get_job_counts()["completed"] == 0


def test_job_events_are_logged_with_id_queue_and_name(service, service_tmp):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "logged", "fail_times": 1},
                     attempts=2, backoff={"type": "fixed", "delay": 100})
    wait_state(job_id, "completed")
    tags = f"[job_id={job_id} queue=data-processing job_name=flaky]"
    log = (service_tmp / "logs" / "combined.log").read_text()
    events = [line for line in log.splitlines() if tags in line]
    assert any("active (attempt 1/2)" in line for line in events)
    assert any("failed attempt 1/2, retrying" in line for line in events)
    assert any(f"job {job_id} completed" in line for line in events)
