"""Celery's result API (``AsyncResult``) answered from the job records, on a real worker."""

from __future__ import annotations

import time

import pytest
from celery import states
from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from django.db import connection
from django.test.utils import CaptureQueriesContext

from intelgraph.celery import app as celery_app
from tasks.jobs.errors import JobStateError
from tasks.models import Job
from tasks.queues import QueueName, add_job, get_job
from tests.integration.helpers import wait_state
from tests.testapp.processors import record


def test_a_completed_job_is_a_success_with_its_result(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "result-1"})

    result = AsyncResult(job_id, app=celery_app)
    assert result.get(timeout=20) == {"key": "result-1"}
    assert (result.state, result.ready(), result.successful()) == (states.SUCCESS, True, True)
    assert get_job(job_id).result == {"key": "result-1"}


def test_delay_returns_a_result_that_gets_the_return_value(service):
    result = record.delay(key="result-2")

    assert result.get(timeout=20) == {"key": "result-2"}
    assert Job.objects.get(pk=result.id).state == "completed"


def test_a_failed_job_raises_its_error_with_its_traceback(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "always-fails", {"key": "result-3"}, attempts=1)

    result = AsyncResult(job_id, app=celery_app)
    with pytest.raises(ConnectionError, match="upstream unreachable"):
        result.get(timeout=20)
    assert result.state == states.FAILURE and result.ready() and not result.successful()
    assert "ConnectionError: upstream unreachable" in result.traceback
    assert isinstance(result.get(propagate=False), ConnectionError)


def test_states_follow_the_record(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky",
                     {"key": "result-4", "fail_times": 1},
                     backoff={"type": "fixed", "delay": 60_000})
    result = AsyncResult(job_id, app=celery_app)

    wait_state(job_id, "delayed")
    assert result.state == states.RETRY  # a failed attempt, the next one due later
    Job.objects.filter(pk=job_id).update(state="waiting", errors=[])
    assert result.state == states.PENDING
    Job.objects.filter(pk=job_id).update(state="active")
    assert result.state == states.STARTED
    Job.objects.filter(pk=job_id).update(state="cancelled")
    assert result.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    assert AsyncResult("no-such-job", app=celery_app).state == states.PENDING


def test_get_times_out_and_polls_with_a_back_off(db):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "never-runs"}, delay=3600_000)
    result = AsyncResult(job_id, app=celery_app)

    started = time.monotonic()
    with CaptureQueriesContext(connection) as reads, pytest.raises(CeleryTimeoutError):
        result.get(timeout=1.5)
    waited = time.monotonic() - started

    assert 1.4 <= waited < 2.5
    # 20 ms doubling to 1 s: a handful of reads in 1.5 s, not one per 20 ms.
    assert 4 <= len(reads) <= 9, len(reads)


def test_forget_removes_a_finished_job_and_refuses_an_unfinished_one(service):
    done = add_job(QueueName.DATA_PROCESSING, "record", {"key": "result-5"})
    AsyncResult(done, app=celery_app).get(timeout=20)
    later = add_job(QueueName.DATA_PROCESSING, "record", {"key": "later"}, delay=3600_000)

    AsyncResult(done, app=celery_app).forget()
    with pytest.raises(JobStateError, match="cannot forget"):
        AsyncResult(later, app=celery_app).forget()

    assert not Job.objects.filter(pk=done).exists()
    assert Job.objects.filter(pk=later, state="delayed").exists()


def test_a_state_celery_reports_itself_leaves_the_record_to_the_service(db):
    """Celery marks an unknown task's message failed through the backend: nothing breaks."""
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "kept"}, delay=3600_000)

    celery_app.backend.mark_as_failure(job_id, KeyError("not registered here"))

    assert Job.objects.get(pk=job_id).state == "delayed"
