"""A paused queue: every worker host stops taking its jobs, including workers started later."""

from __future__ import annotations

import time

from tasks.models import Job
from tasks.queues import QueueName, add_job
from tasks.worker import presence
from tests import processes
from tests.integration.helpers import wait_state
from tests.processes import wait_for


def test_pause_holds_on_every_host_and_across_worker_restarts(service, live_broker, tmp_path):
    presence.pause_queue(QueueName.ANALYTICS, by="ops")
    try:
        # A heartbeat written after the pause, without analytics (the table is
        # emptied between tests, so "no heartbeat" must not pass for "paused").
        wait_for(lambda: any(w.hostname.startswith("shared@") for w in presence.workers())
                 and not presence.consumers()["analytics"], 10,
                 message="the shared worker to pause")
        # a worker on another "host" started after the pause honours it from its first message
        late = processes.worker(live_broker, tmp_path, "latecomer", queues="analytics").start()
        try:
            job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "held"})
            time.sleep(4)
            held = Job.objects.get(pk=job_id)
            assert held.state == "waiting", (held.state, held.worker)
            assert presence.consumers()["analytics"] == []
            assert {"latecomer", "shared"} <= {w.hostname.split("@")[0] for w in presence.workers()}
            presence.resume_queue(QueueName.ANALYTICS, by="ops")
            wait_state(job_id, "completed", timeout=20)
            wait_for(lambda: len(presence.consumers()["analytics"]) == 2, 10,
                     message="both workers to consume again")
        finally:
            late.stop()
    finally:
        presence.resume_queue(QueueName.ANALYTICS, by="ops")
