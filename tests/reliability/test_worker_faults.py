"""kill -9 at every level of a worker, poison jobs, and graceful shutdown.

Each test owns a dedicated worker on the analytics queue (the shared worker
stops consuming it meanwhile); a ledger row per execution counts runs.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tasks.models import Job
from tasks.queues import QueueName, add_job
from tests import processes
from tests.integration.helpers import shared_worker_paused, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution


@pytest.fixture
def analytics_only(service):
    with shared_worker_paused("analytics"):
        yield


def _pid_running(job_id: str) -> int:
    def logged_pid():
        job = Job.objects.filter(pk=job_id).first()
        line = job and job.logs.filter(message__startswith="pid ").first()
        return int(line.message.split()[1]) if line else None

    return wait_for(logged_pid, 30, message=f"job {job_id} to start")


def test_kill_pool_child_then_main_then_group_each_job_runs_once(analytics_only, live_broker, tmp_path):
    first = processes.worker(live_broker, tmp_path, "victim", queues="analytics").start()
    second = None
    try:
        # 1. the pool child running the job
        job1 = add_job(QueueName.ANALYTICS, "slow", {"key": "child", "seconds": 2})
        os.kill(_pid_running(job1), signal.SIGKILL)
        done = wait_state(job1, "completed", timeout=40)
        assert done.lost_count == 1

        # 2. the worker's main process (its children are orphaned)
        job2 = add_job(QueueName.ANALYTICS, "slow", {"key": "main", "seconds": 2})
        _pid_running(job2)
        first.signal(signal.SIGKILL)
        second = processes.worker(live_broker, tmp_path, "rescuer", queues="analytics").start()
        assert wait_state(job2, "completed", timeout=60).lost_count == 1

        # 3. the whole process group of a worker
        third = processes.worker(live_broker, tmp_path, "victim2", queues="analytics").start()
        second.stop()
        job3 = add_job(QueueName.ANALYTICS, "slow", {"key": "group", "seconds": 2})
        _pid_running(job3)
        third.kill_group()
        second = processes.worker(live_broker, tmp_path, "rescuer2", queues="analytics").start()
        assert wait_state(job3, "completed", timeout=60).lost_count == 1
        time.sleep(3)  # any late duplicate would land in the ledger now
        for key in ("child", "main", "group"):
            assert Execution.objects.filter(key=key).count() == 1, key
    finally:
        first.kill_group()
        if second:
            second.stop()


def test_poison_job_fails_after_n_worker_losses_and_others_flow(analytics_only, live_broker, tmp_path):
    worker = processes.worker(live_broker, tmp_path, "poisoned", queues="analytics").start()
    try:
        poison = add_job(QueueName.ANALYTICS, "suicide", {"key": "poison"})
        healthy = [add_job(QueueName.ANALYTICS, "record-analytics", {"key": f"ok{i}"}) for i in range(5)]
        job = wait_state(poison, "failed", timeout=90)
        assert job.lost_count == 3
        assert job.errors[-1]["error"] == "worker lost 3 times"
        assert Execution.objects.filter(key="poison").count() == 3
        for job_id in healthy:
            wait_state(job_id, "completed", timeout=30)
    finally:
        worker.stop()


def test_sigterm_lets_running_jobs_finish_and_takes_no_new_ones(analytics_only, live_broker, tmp_path):
    worker = processes.worker(live_broker, tmp_path, "graceful", queues="analytics").start()
    running = [add_job(QueueName.ANALYTICS, "slow", {"key": f"long{i}", "seconds": 3}) for i in range(2)]
    for job_id in running:
        _pid_running(job_id)
    queued = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "after-term"})
    worker.signal(signal.SIGTERM)
    worker.process.wait(30)
    for job_id in running:
        assert Job.objects.get(pk=job_id).state == "completed"
    assert Job.objects.get(pk=queued).state == "waiting"
    rescuer = processes.worker(live_broker, tmp_path, "after", queues="analytics").start()
    try:
        wait_state(queued, "completed")
        for key in ("long0", "long1", "after-term"):
            assert Execution.objects.filter(key=key).count() == 1
    finally:
        rescuer.stop()
    assert not psutil.pid_exists(worker.pid) or psutil.Process(worker.pid).status() == "zombie"


def test_an_active_job_ignoring_cancel_is_terminated_after_the_grace(analytics_only, live_broker, tmp_path):
    from tasks.operate.actions import cancel_job

    worker = processes.worker(live_broker, tmp_path, "stubborn", queues="analytics").start()
    try:
        job_id = add_job(QueueName.ANALYTICS, "slow", {"key": "stubborn", "seconds": 60})
        child = _pid_running(job_id)
        started = time.monotonic()
        assert cancel_job(job_id, by="ops") == "active"
        job = wait_state(job_id, "cancelled", timeout=30)
        assert time.monotonic() - started >= 2  # the processor had its grace period
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
        assert job.lost_count == 0
        time.sleep(2)
        assert Execution.objects.filter(key="stubborn").count() == 0
        assert Job.objects.get(pk=job_id).state == "cancelled"
    finally:
        worker.stop()


def test_pool_child_killed_mid_batch_reruns_only_what_was_not_recorded(
        analytics_only, live_broker, tmp_path):
    """A batch (``tasks.worker.batch``) whose process dies: every job completes once.

    Completions are written every 0.1 s; each job here takes 0.3 s, so at the
    kill at most the job running and one finished but unwritten run again.
    """
    from tasks.queues import add_bulk

    victim = processes.worker(live_broker, tmp_path, "batch-victim", queues="analytics",
                              concurrency=1).start()
    rescuer = None
    try:
        ids = add_bulk({"queue": "analytics", "name": "batched",
                        "data": {"key": f"mid{i}", "sleep": 0.3}} for i in range(10))
        wait_for(lambda: Execution.objects.filter(key__startswith="mid").count() >= 4, 30,
                 message="4 jobs of the batch to run")
        pid = Execution.objects.filter(key__startswith="mid").first().worker_pid
        os.kill(pid, signal.SIGKILL)
        for job_id in ids:
            wait_state(job_id, "completed", timeout=60)
        time.sleep(2)  # a late duplicate would land in the ledger now
        runs = {job_id: Execution.objects.filter(job_id=job_id).count() for job_id in ids}
        assert all(count >= 1 for count in runs.values()), runs
        assert sum(count > 1 for count in runs.values()) <= 2, runs
        # The batch's unfinished jobs were given back once each, then ran on their own.
        assert {Job.objects.get(pk=job_id).lost_count for job_id in ids} <= {0, 1}
    finally:
        victim.kill_group()
        if rescuer:
            rescuer.stop()


def test_poison_job_in_a_batch_fails_alone_and_its_batch_mates_complete(
        analytics_only, live_broker, tmp_path):
    """The batch's process dies: its unfinished jobs come back once and then run alone,
    so the job that kills its process is the only one whose losses add up."""
    from tasks.queues import add_bulk

    worker = processes.worker(live_broker, tmp_path, "poisoned-batch", queues="analytics",
                              concurrency=1).start()
    try:
        ids = add_bulk({"queue": "analytics", "name": "batched",
                        "data": {"key": f"mate{i}", "kill": i == 2}} for i in range(6))
        poison = wait_state(ids[2], "failed", timeout=120)
        assert poison.lost_count == 3 and poison.errors[-1]["error"] == "worker lost 3 times"
        for job_id in ids[:2] + ids[3:]:
            job = wait_state(job_id, "completed", timeout=60)
            assert job.lost_count <= 1, (job_id, job.lost_count)
    finally:
        worker.stop()


def test_a_batched_job_ignoring_cancel_is_terminated_and_its_mates_complete(
        analytics_only, live_broker, tmp_path):
    """Forced cancellation finds the batch carrying the job (``tasks.worker.remote``)."""
    from tasks.operate.actions import cancel_job
    from tasks.queues import add_bulk

    worker = processes.worker(live_broker, tmp_path, "stubborn-batch", queues="analytics",
                              concurrency=1).start()
    try:
        stubborn, mate = add_bulk({"queue": "analytics", "name": "batched-stubborn",
                                   "data": data}
                                  for data in ({"key": "stubborn-b", "seconds": 25},
                                               {"key": "mate-b"}))
        wait_state(stubborn, "active")
        assert cancel_job(stubborn, by="ops") == "active"
        job = wait_state(stubborn, "cancelled", timeout=20)  # terminated, not left to sleep
        assert job.lost_count == 0
        assert wait_state(mate, "completed", timeout=60).lost_count <= 1
        time.sleep(1)
        assert Job.objects.get(pk=stubborn).state == "cancelled"
    finally:
        worker.stop()
