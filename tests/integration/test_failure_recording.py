"""Failures that go wrong while being recorded, on the real worker (issue 13, item 8).

Before: the first failure of a job whose backoff overflowed (a stored delay of
10**20 ms, a custom strategy's NaN) raised inside the failure path; the job
stayed active, was taken for an orphan, and ended "worker lost 3 times" with
its real error never recorded.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from tasks.jobs.limits import MAX_BACKOFF_MS
from tasks.models import Job
from tasks.queues import QueueName, add_job
from tests.integration.helpers import wait_state
from tests.testapp.models import Execution


def test_an_error_computing_the_retry_is_recorded_as_the_jobs_error(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "unlucky-backoff", {"key": "unlucky"},
                     attempts=3, backoff={"type": "custom"})
    job = wait_state(job_id, "failed")
    assert job.attempts_made == 1 and job.lost_count == 0, job.errors
    assert len(job.errors) == 1
    error = job.errors[0]["error"]
    assert error.startswith("TransientJobError: upstream said \\x00 and \\ud800")
    assert "not retried: computing its backoff raised InvalidBackoffError" in error
    assert "custom strategy returned nan" in error
    assert "worker lost" not in error.lower()
    assert Execution.objects.filter(key="unlucky").count() == 1


def test_a_stored_backoff_beyond_the_bound_retries_after_a_day_not_a_crash(service):
    """A row written before the bounds, with a 10**20 ms backoff, fails into delayed."""
    with transaction.atomic():
        job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "old-row", "fail_times": 1},
                         attempts=2)
        Job.objects.filter(pk=job_id).update(backoff={"type": "fixed", "delay": 10**20})
    before = timezone.now()
    job = wait_state(job_id, "delayed")
    assert job.lost_count == 0 and job.errors[0]["error"].startswith("TransientJobError")
    waited = job.run_at - before
    assert timedelta(milliseconds=MAX_BACKOFF_MS) - timedelta(minutes=1) < waited
    assert waited < timedelta(milliseconds=MAX_BACKOFF_MS) + timedelta(minutes=1)


def test_a_connection_dropped_while_recording_a_retry_still_retries(transactional_db,
                                                                    monkeypatch):
    """Found by the full-strength soak on PostgreSQL: the connection terminated while a
    failed attempt was being recorded; the fallback recorded it reduced and without its
    retry, so a job with attempts left ended failed."""
    from celery.exceptions import Retry

    from tasks.enqueue.task import get_task
    from tasks.jobs.errors import TransientJobError
    from tasks.worker import lifecycle
    from tasks.worker.job import JobContext

    # given a claimed job with attempts left (a row with no message: no worker of the
    # session may claim it first)
    now = timezone.now()
    job_id = Job.objects.create(id="dropped-1", queue="data-processing", name="flaky",
                                data={"key": "dropped"}, max_attempts=3, created_at=now,
                                enqueued_at=now, published_at=now).pk
    won = lifecycle.claim(job_id, "w@host")
    assert won is not None
    real, calls = lifecycle.record_failure, []

    def connection_dropped_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # what psycopg raises when the server ends the session
            from django.db import OperationalError

            raise OperationalError("terminating connection due to administrator command")
        return real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "record_failure", connection_dropped_once)
    task = get_task(QueueName.DATA_PROCESSING, "flaky")
    job = JobContext(id=job_id, queue="data-processing", name="flaky", data={"key": "dropped"},
                     attempts_made=won.attempts_made, max_attempts=won.max_attempts)
    # when its failure is recorded and the first write loses the connection
    try:
        raise TransientJobError("upstream down")
    except TransientJobError as exc:
        raised = None
        try:
            task._fail(job, won, exc, timezone.now())
        except Retry as retry:
            raised = retry
    # then it is retried by its backoff, its error recorded in full
    assert raised is not None and len(calls) == 2
    row = Job.objects.get(pk=job_id)
    assert row.state == "delayed", (row.state, row.errors)
    assert row.errors[-1]["error"] == "TransientJobError: upstream down"
    assert row.errors[-1]["traceback"]
