"""Changing the priority of a waiting or delayed job: the action, the dashboard, the HTTP API.

A waiting job's message is published again at the new priority; raised, it
overtakes the backlog and the old message is a harmless duplicate (the claim
is a compare-and-set); lowered, the old message is taken back first (Redis).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from celery import current_app
from django.test import Client

from tasks import fastpath
from tasks.fastpath.registry import Fastpaths
from tasks.jobs import permissions
from tasks.jobs.errors import InvalidPriorityError, JobNotFoundError, JobStateError
from tasks.models import Job, JobLog
from tasks.operate.actions import change_priority
from tasks.operate.dashboard import diagnosis
from tasks.queues import JobPriority, QueueName, add_bulk, add_job
from tests import processes
from tests.integration.helpers import queue_length, shared_worker_paused, staff_user
from tests.processes import wait_for
from tests.testapp.models import Execution

DP = QueueName.DATA_PROCESSING


def _redis() -> bool:
    return current_app.conf.broker_url.startswith("redis")


def _logs(job_id: str) -> list[str]:
    return list(JobLog.objects.filter(job_id=job_id).values_list("message", flat=True))


def test_a_delayed_job_gets_its_new_priority_and_nothing_is_published(db, broker):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    before = queue_length("data-processing")

    assert change_priority(job_id, JobPriority.CRITICAL, "ann") == "delayed"

    job = Job.objects.get(pk=job_id)
    assert (job.state, job.priority) == ("delayed", 1)
    assert _logs(job_id) == ["priority changed from 3 to 1 by ann"]
    assert queue_length("data-processing") == before


@pytest.mark.parametrize("priority, error", [(0, InvalidPriorityError), (6, InvalidPriorityError),
                                             ("1", InvalidPriorityError),
                                             (True, InvalidPriorityError)])
def test_a_priority_outside_1_to_5_is_refused(db, priority, error):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    with pytest.raises(error):
        change_priority(job_id, priority)
    assert Job.objects.get(pk=job_id).priority == 3 and not _logs(job_id)


def test_only_waiting_and_delayed_jobs_change_priority(db):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    Job.objects.filter(pk=job_id).update(state="completed")
    with pytest.raises(JobStateError, match="cannot change the priority of job .*: it is "
                                            "completed"):
        change_priority(job_id, 1)
    with pytest.raises(JobNotFoundError):
        change_priority("no-such-job", 1)


def _run_in_order(live_broker, tmp_path, count: int) -> list[str]:
    """Start a one-process worker on data-processing; the jobs' keys in the order they ran."""
    worker = processes.worker(live_broker, tmp_path, "prio-change", queues="data-processing",
                              concurrency=1).start()
    try:
        wait_for(lambda: Job.objects.filter(state="completed").count() == count, 60,
                 message=f"{count} jobs to complete")
    finally:
        worker.stop()
    return list(Job.objects.order_by("started_at").values_list("data__key", flat=True))


def test_a_raised_job_overtakes_the_backlog_on_a_real_worker(service, live_broker, tmp_path):
    with shared_worker_paused("data-processing"):
        add_bulk({"queue": "data-processing", "name": "record",
                  "data": {"key": f"backlog{n}", "sleep": 0.05}} for n in range(20))
        target = add_job(DP, "record", {"key": "target"}, priority=JobPriority.BACKGROUND)

        change_priority(target, JobPriority.CRITICAL, "ops")

        order = _run_in_order(live_broker, tmp_path, 21)
    assert order[0] == "target", order
    assert Execution.objects.filter(key="target").count() == 1  # the old message ran nothing
    job = Job.objects.get(pk=target)
    assert (job.priority, job.attempts_made) == (1, 1)


def test_a_lowered_waiting_job_goes_behind_the_backlog(service, live_broker, tmp_path,
                                                       own_fastpaths):
    with shared_worker_paused("data-processing"):
        add_bulk({"queue": "data-processing", "name": "record",
                  "data": {"key": f"backlog{n}"}} for n in range(8))
        target = add_job(DP, "record", {"key": "target"}, priority=JobPriority.CRITICAL)
        queued = queue_length("data-processing")
        if not _redis():
            with pytest.raises(JobStateError, match="cannot be taken back"):
                change_priority(target, JobPriority.BACKGROUND)
            return

        change_priority(target, JobPriority.BACKGROUND, "ops")

        assert queue_length("data-processing") == queued  # the old message taken back
        order = _run_in_order(live_broker, tmp_path, 9)
    assert order[-1] == "target", order


def test_lowering_a_waiting_job_is_refused_where_its_message_cannot_be_taken_back(
        db, broker, monkeypatch):
    monkeypatch.setitem(current_app.__dict__, "intelgraph_fastpaths", Fastpaths(frozenset()))
    target = add_job(DP, "record", {"key": "t"}, priority=JobPriority.HIGH)
    with pytest.raises(JobStateError, match="lower the priority of job .*cannot be taken back "
                                            "\\(.*\\); lower its priority while it is delayed"):
        change_priority(target, JobPriority.LOW)
    assert Job.objects.get(pk=target).priority == 2
    change_priority(target, JobPriority.CRITICAL)  # raising needs nothing taken back
    assert Job.objects.get(pk=target).priority == 1


def test_why_not_running_counts_lifo_jobs_ahead(db, broker, own_fastpaths):
    if fastpath.lifo_problem(current_app):
        pytest.skip(f"LIFO is refused here: {fastpath.lifo_problem(current_app)}")
    fifo = add_job(DP, "record", {"key": "fifo"})
    lifo = add_job(DP, "record", {"key": "lifo"}, lifo=True)
    later_lifo = add_job(DP, "record", {"key": "lifo2"}, lifo=True)
    situation = diagnosis.QueueSituation(paused=False, consumers=["w"], busy=False)
    assert "2 LIFO job(s) of the same priority ahead." in diagnosis.reasons(
        Job.objects.get(pk=fifo), situation)
    assert "1 LIFO job(s) of the same priority added after it." in diagnosis.reasons(
        Job.objects.get(pk=lifo), situation)
    assert diagnosis.reasons(Job.objects.get(pk=later_lifo), situation) == [
        "Nothing holds it back: a worker should take it within moments."]


def test_why_not_running_says_a_job_is_debounced(db):
    job_id = add_job(DP, "record", {"key": "d"}, debounce=60_000, unique_key="user-7")
    situation = diagnosis.QueueSituation(paused=False, consumers=["w"], busy=False)
    assert ("Debounced (key 'user-7'): each add before it starts replaces its data and moves "
            "its start again.") in diagnosis.reasons(Job.objects.get(pk=job_id), situation)


# --- the dashboard --------------------------------------------------------------------

def _client(*perms: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user("user", *perms))
    return client


def _post_form(client: Client, job_id: str, priority: str):
    page = client.get(f"/queues/jobs/{job_id}")
    token = client.cookies["csrftoken"].value
    return page, client.post(f"/queues/jobs/{job_id}", {"action": "priority",
                                                        "priority": priority,
                                                        "csrfmiddlewaretoken": token},
                             follow=True)


def test_an_operator_changes_the_priority_from_the_job_page(db):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    client = _client(permissions.VIEW, permissions.OPERATE)
    page, done = _post_form(client, job_id, "2")
    assert 'id="change-priority"' in page.content.decode()
    assert done.status_code == 200
    assert f"Job {job_id} now has priority 2." in done.content.decode()
    assert Job.objects.get(pk=job_id).priority == 2
    assert _logs(job_id) == ["priority changed from 3 to 2 by user"]
    _, refused = _post_form(client, job_id, "9")
    assert "priority 9 is outside 1 (CRITICAL) .. 5 (BACKGROUND)" in refused.content.decode()
    assert Job.objects.get(pk=job_id).priority == 2


def test_the_form_needs_the_operate_permission(db):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    client = _client(permissions.VIEW)
    page = client.get(f"/queues/jobs/{job_id}")
    assert 'id="change-priority"' not in page.content.decode()
    token = client.cookies["csrftoken"].value
    response = client.post(f"/queues/jobs/{job_id}", {"action": "priority", "priority": "1",
                                                       "csrfmiddlewaretoken": token})
    assert response.status_code == 403
    assert Job.objects.get(pk=job_id).priority == 3


# --- the HTTP API ----------------------------------------------------------------------

def _api(client: Client, job_id: str, body) -> tuple[int, dict]:
    response = client.post(f"/api/jobs/{job_id}/priority", data=json.dumps(body),
                           content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.parametrize("perm", [permissions.ENQUEUE, permissions.OPERATE])
def test_the_api_changes_priority_with_the_enqueue_or_operate_permission(db, client, perm):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    client.force_login(staff_user("api", perm))
    assert _api(client, job_id, {"priority": 1}) == (
        200, {"id": job_id, "state": "delayed", "priority": 1})
    assert _logs(job_id) == ["priority changed from 3 to 1 by api (API)"]


def test_the_api_refuses_what_it_cannot_do(db, client):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    assert _api(client, job_id, {"priority": 1})[0] == 401
    client.force_login(staff_user("viewer", permissions.VIEW))
    status, body = _api(client, job_id, {"priority": 1})
    assert status == 403 and "'tasks.enqueue_job' or 'tasks.operate_job'" in body["error"]
    client.force_login(staff_user("api", permissions.ENQUEUE))
    assert _api(client, job_id, {"priority": 0})[0] == 400
    assert _api(client, job_id, {"prio": 1})[0] == 400
    assert _api(client, job_id, [1])[0] == 400
    assert _api(client, "no-such-job", {"priority": 1})[0] == 404
    Job.objects.filter(pk=job_id).update(state="completed")
    status, body = _api(client, job_id, {"priority": 1})
    assert status == 409 and "it is completed" in body["error"]
    assert Job.objects.get(pk=job_id).priority == 3
    assert client.get(f"/api/jobs/{job_id}/priority").status_code == 405


def test_the_api_enforces_csrf_for_session_clients(db):
    job_id = add_job(DP, "record", {"key": "d"}, delay=timedelta(hours=1))
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user("api", permissions.ENQUEUE))
    response = client.post(f"/api/jobs/{job_id}/priority", data=json.dumps({"priority": 1}),
                           content_type="application/json")
    assert response.status_code == 403 and b"CSRF" in response.content
    assert Job.objects.get(pk=job_id).priority == 3

