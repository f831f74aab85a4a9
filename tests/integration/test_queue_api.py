"""The queue object: listings, clean, retention, and retry/promote/cancel/remove by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.jobs.errors import JobStateError, UnknownQueueError
from tasks.models import Job, JobLog
from tasks.queues import QueueName, add_job, queue_registry
from tasks.upkeep.retention import enforce_retention
from tests.integration.helpers import wait_state
from tests.testapp.models import Execution


def _finished(queue: str, state: str, age: timedelta, n: int, prefix: str) -> list[str]:
    now = timezone.now()
    rows = [Job(id=f"{prefix}{i}", queue=queue, name="record", state=state, created_at=now - age,
                finished_at=now - age - timedelta(seconds=i)) for i in range(n)]
    Job.objects.bulk_create(rows)
    return [r.id for r in rows]


def test_registry_refuses_undeclared_queues():
    with pytest.raises(UnknownQueueError, match="'nope' is not one of"):
        queue_registry.get_queue("nope")
    assert [q.name for q in queue_registry.all()] == list(QueueName)


def test_pause_and_resume_from_the_queue_object(db):
    # given a queue object, as BullMQ's queue.pause()/resume()
    queue = queue_registry.get_queue(QueueName.EMAIL)
    assert not queue.is_paused()
    # when it is paused, then the flag every worker reads is set, for this queue only
    queue.pause(by="ops")
    assert queue.is_paused()
    assert not queue_registry.get_queue(QueueName.ANALYTICS).is_paused()
    # when it is resumed, then the flag is cleared
    queue.resume(by="ops")
    assert not queue.is_paused()


def test_clean_by_state_and_grace(db):
    queue = queue_registry.get_queue(QueueName.DATA_PROCESSING)
    _finished("data-processing", "completed", timedelta(hours=2), 5, "old")
    _finished("data-processing", "completed", timedelta(seconds=1), 3, "new")
    _finished("email", "completed", timedelta(hours=2), 2, "other")
    assert queue.clean(timedelta(hours=1), "completed") == 5
    assert queue.clean(60 * 60 * 1000, "completed") == 0  # grace in ms, like BullMQ
    assert queue.get_job_counts("completed") == {"completed": 3}
    assert Job.objects.filter(queue="email").count() == 2
    with pytest.raises(ValueError, match="cannot be cleaned"):
        queue.clean(0, "active")


def test_retention_keeps_age_and_count_limits(db):
    _finished("email", "completed", timedelta(hours=25), 4, "stale")
    kept = _finished("email", "completed", timedelta(minutes=5), 1003, "fresh")
    _finished("email", "failed", timedelta(days=8), 2, "oldfail")
    _finished("email", "failed", timedelta(days=6), 2, "recentfail")
    removed = enforce_retention()
    assert removed["email"] == 4 + 3 + 2
    remaining = set(Job.objects.filter(queue="email", state="completed").values_list("id", flat=True))
    assert remaining == set(kept[:1000])  # the newest 1000
    assert set(Job.objects.filter(state="failed").values_list("id", flat=True)) == {"recentfail0", "recentfail1"}


def test_retry_a_failed_job_by_hand(service):
    queue = queue_registry.get_queue(QueueName.DATA_PROCESSING)
    job_id = add_job(QueueName.DATA_PROCESSING, "fails-first-runs", {"key": "manual"}, attempts=1)
    wait_state(job_id, "failed")
    assert queue.retry_failed(by="ops") == 1
    job = wait_state(job_id, "completed")
    assert job.attempts_made == 1  # attempts start afresh on a manual retry
    assert len(job.errors) == 1  # the earlier failure is kept for review
    assert "retried by ops (retry all failed)" in job.logs.values_list("message", flat=True)
    with pytest.raises(JobStateError, match="it is completed"):
        queue.retry_job(job_id)


def test_promote_cancel_and_remove(service):
    queue = queue_registry.get_queue(QueueName.DATA_PROCESSING)
    later = add_job(QueueName.DATA_PROCESSING, "record", {"key": "promoted"}, delay=timedelta(hours=1))
    assert [j.id for j in queue.get_delayed()] == [later]
    queue.promote_job(later, by="ops")
    wait_state(later, "completed")
    assert Execution.objects.filter(key="promoted").count() == 1

    doomed = add_job(QueueName.DATA_PROCESSING, "record", {"key": "cancelled"}, delay=timedelta(hours=1))
    assert queue.cancel_job(doomed, by="ops") == "cancelled"
    assert Job.objects.get(pk=doomed).state == "cancelled"
    with pytest.raises(JobStateError):
        queue.promote_job(doomed)
    assert queue.remove_job(doomed) is True
    assert not Job.objects.filter(pk=doomed).exists()
    assert not JobLog.objects.filter(job_id=doomed).exists()
    assert Execution.objects.filter(key="cancelled").count() == 0


def test_listings_are_ordered(db):
    now = timezone.now()
    Job.objects.bulk_create([
        Job(id=f"w{i}", queue="analytics", name="record-analytics", state="waiting",
            created_at=now + timedelta(seconds=i)) for i in range(5)
    ])
    queue = queue_registry.get_queue("analytics")
    assert [j.id for j in queue.get_waiting()] == ["w0", "w1", "w2", "w3", "w4"]
    assert [j.id for j in queue.get_waiting(1, 2)] == ["w1", "w2"]
    assert queue.get_job("w3").state == "waiting"
    assert queue.get_job("missing") is None
