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
