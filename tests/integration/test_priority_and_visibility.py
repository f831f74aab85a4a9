"""Priority under backlog and long delays with a short visibility timeout, on dedicated workers."""

from __future__ import annotations

import time

from tasks.models import Job
from tasks.queues import JobPriority, QueueName, add_bulk, add_job
from tests import processes
from tests.integration.helpers import shared_worker_paused, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution


def test_backlog_is_served_in_priority_order(service, live_broker, tmp_path):
    with shared_worker_paused("data-processing"):
        background = add_bulk(
            {"queue": "data-processing", "name": "record", "data": {"key": f"bg{i}"},
             "priority": JobPriority.BACKGROUND}
            for i in range(200)
        )
        critical = add_bulk(
            {"queue": "data-processing", "name": "record", "data": {"key": f"crit{i}"},
             "priority": JobPriority.CRITICAL}
            for i in range(20)
        )
        worker = processes.worker(live_broker, tmp_path, "prio", queues="data-processing",
                                  concurrency=1).start()
        try:
            wait_for(lambda: Job.objects.filter(pk__in=critical, state="completed").count() == 20,
                     60, message="all CRITICAL jobs to complete")
            worker.stop()
        finally:
            worker.kill_group()
    order = list(
        Job.objects.filter(state="completed").order_by("finished_at").values_list("id", flat=True)
    )
    last_critical = max(order.index(job_id) for job_id in critical)
    background_before = [j for j in order[:last_critical] if j in set(background)]
    assert len(background_before) < 10, f"{len(background_before)} BACKGROUND jobs ran first"


def test_delay_longer_than_the_visibility_timeout_runs_once(service, live_broker, tmp_path):
    """Redis re-delivers unacked messages after the visibility timeout; a delay
    handed to the broker as an ETA would run twice. Ours waits in the database."""
    with shared_worker_paused("analytics"):
        worker = processes.worker(live_broker, tmp_path, "shortvt", queues="analytics",
                                  concurrency=1, BROKER_VISIBILITY_TIMEOUT="1").start()
        try:
            started = time.monotonic()
            job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "vt", "sleep": 2.5},
                             delay=3000)
            job = wait_state(job_id, "completed", timeout=30)
            assert time.monotonic() - started >= 3
            time.sleep(2.5)  # a re-delivery after the 1 s timeout would show up here
            assert Execution.objects.filter(key="vt").count() == 1
            assert job.worker.startswith("shortvt@")
            assert job.attempts_made == 1
        finally:
            worker.stop()
