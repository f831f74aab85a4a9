"""Celery revokes cancel jobs on record, and never hold back a job retried afterwards."""

from __future__ import annotations

import time

import pytest
from celery.app.control import Control
from celery.result import AsyncResult

from intelgraph.celery import app as celery_app
from tasks.models import Job
from tasks.operate.actions import retry_job
from tasks.queues import QueueName, add_job
from tests import processes
from tests.integration.helpers import shared_worker_paused, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution


def test_revoking_a_waiting_job_cancels_it_on_record_at_once(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "revoked"}, delay=3600_000)

    AsyncResult(job_id, app=celery_app).revoke()

    job = Job.objects.get(pk=job_id)
    assert (job.state, job.cancel_requested) == ("cancelled", True)
    assert job.logs.filter(message="cancelled by celery revoke").exists()


def test_a_revoke_from_another_client_is_recorded_by_the_worker_that_hears_it(service):
    with shared_worker_paused("analytics"):
        job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "foreign"})
        Control(app=celery_app).revoke(job_id)  # Celery's own control: nothing on record yet
        wait_state(job_id, "cancelled")  # the worker's revoke handler told the result backend

    time.sleep(1)  # the queue is consumed again: its message is discarded, not run
    assert not Execution.objects.filter(key="foreign").exists()
    assert Job.objects.get(pk=job_id).state == "cancelled"


def test_revoke_by_stamped_headers_is_refused_loudly(db):
    with pytest.raises(NotImplementedError, match="revoked by id"):
        celery_app.control.revoke_by_stamped_headers({"header": "value"})


@pytest.fixture
def analytics_worker(service, live_broker, tmp_path):
    with shared_worker_paused("analytics"):
        worker = processes.worker(live_broker, tmp_path, "revoker", queues="analytics").start()
        try:
            yield worker
        finally:
            worker.stop()


def test_a_job_terminated_by_revoke_and_then_retried_runs_within_seconds(analytics_worker):
    job_id = add_job(QueueName.ANALYTICS, "slow", {"key": "terminated", "seconds": 60})
    wait_for(lambda: Job.objects.filter(pk=job_id, state="active").exists(), 30,
             message="the job to start")
    time.sleep(0.5)  # the processor is sleeping in its pool process

    AsyncResult(job_id, app=celery_app).revoke(terminate=True)

    assert Job.objects.get(pk=job_id).cancel_requested  # on record before any worker acts
    wait_state(job_id, "cancelled")
    Job.objects.filter(pk=job_id).update(data={"key": "terminated", "seconds": 0.1})
    started = time.monotonic()
    retry_job(job_id, by="test")
    wait_state(job_id, "completed", timeout=20)
    assert time.monotonic() - started < 10  # not held back by the worker's revoked set
    assert Execution.objects.filter(key="terminated").count() == 1
