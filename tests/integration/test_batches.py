"""Batched execution (``@processor(batch=N)``) through the real worker: per-job promises hold.

The test processor ``analytics.batched`` takes up to 10 jobs per message,
with a 4 s soft time limit per job; its data says how each job behaves.
"""

from __future__ import annotations

import re
import time

from tasks.jobs.routing import batch_task_name
from tasks.models import Job
from tasks.operate.actions import cancel_job
from tasks.queues import QueueName, add_bulk, add_job
from tests.integration.helpers import wait_state
from tests.testapp.models import Execution

BATCH_TASK = batch_task_name("analytics.batched")


def _jobs(*datas: dict, **options) -> list[str]:
    return add_bulk([{"queue": "analytics", "name": "batched", "data": data, **options}
                     for data in datas])


def _received(worker) -> int:
    return len(re.findall(rf"Task {re.escape(BATCH_TASK)}\[batch-[0-9a-f-]+\] received",
                          worker.log_text()))


def test_a_burst_goes_in_batch_messages_and_every_job_runs_once(service):
    before = _received(service["worker"])
    ids = _jobs(*({"key": f"burst{i}"} for i in range(25)))
    for job_id in ids:
        job = wait_state(job_id, "completed")
        assert job.result["key"].startswith("burst") and job.attempts_made == 1
    assert _received(service["worker"]) - before == 3  # 10 + 10 + 5 jobs
    time.sleep(0.5)
    assert Execution.objects.filter(key__startswith="burst").count() == 25


def test_a_job_alone_still_runs_and_a_duplicate_delivery_runs_nothing(service):
    job_id = add_job(QueueName.ANALYTICS, "batched", {"key": "alone"})
    wait_state(job_id, "completed")
    from tasks.enqueue.publishing import message_for, publish

    publish([message_for(Job.objects.get(pk=job_id))])  # the same job delivered again
    time.sleep(1.5)
    assert Execution.objects.filter(key="alone").count() == 1


def test_each_job_of_a_batch_fails_retries_and_reports_on_its_own(service):
    ok, flaky, hopeless, progress = _jobs(
        {"key": "ok"}, {"key": "flaky", "fail_times": 1}, {"key": "hopeless", "permanent": True},
        {"key": "progress", "progress": True}, backoff={"type": "fixed", "delay": 200})
    assert wait_state(ok, "completed").attempts_made == 1
    retried = wait_state(flaky, "completed")
    assert retried.attempts_made == 2
    assert [e["attempt"] for e in retried.errors] == [1]
    assert "transient failure on attempt 1" in retried.errors[0]["error"]
    failed = wait_state(hopeless, "failed")
    assert failed.attempts_made == 1 and "PermanentJobError" in failed.errors[-1]["error"]
    assert wait_state(progress, "completed").progress == 50


def test_a_job_of_a_batch_is_timed_by_its_own_soft_limit(service):
    slow, quick = _jobs({"key": "slow-one", "sleep": 8}, {"key": "quick-after"}, attempts=1)
    failed = wait_state(slow, "failed", timeout=30)
    assert "JobTimeoutError" in failed.errors[-1]["error"]
    assert "soft timeout" in failed.errors[-1]["error"], failed.errors
    assert wait_state(quick, "completed").attempts_made == 1  # the batch went on


def test_a_job_of_a_batch_is_cancelled_alone(service):
    waits, after = _jobs({"key": "cancel-me", "wait_cancel": 20}, {"key": "after-cancel"})
    wait_state(waits, "active")
    cancel_job(waits)
    assert wait_state(waits, "cancelled").result is None
    assert wait_state(after, "completed").attempts_made == 1
