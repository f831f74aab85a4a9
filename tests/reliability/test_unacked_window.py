"""A worker killed inside the unacked fast path's window loses nothing.

With ``unacked-after-pool-write`` (``tasks/fastpath/unacked.py``) kombu's
unacked record of a taken message is written one loop turn after the job
reaches its pool process. A worker killed in that turn leaves the message
nowhere on the broker: not on a queue list (taken) and not in kombu's
``unacked`` hash (not yet written), so kombu cannot restore it. This test
kills a worker's whole process group exactly there, checks that the broker
indeed holds nothing of the job, and that the job still completes exactly
once: the reconciler re-publishes a waiting job whose message is on no list,
and the promoter re-queues an active job whose worker went silent.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest
import redis
from celery import current_app

from tasks.models import Job
from tasks.queues import QueueName, add_job
from tests import processes
from tests.integration.helpers import shared_worker_paused, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution

#: A worker whose deferred unacked write kills its own process group instead: the job
#: is in a child's pipe (the write waits for that) and its record is not written.
KILLED_IN_THE_WINDOW = """
import os, signal, sys
from tasks.fastpath import unacked

def write_scheduled(self):
    if self.pending:
        os.killpg(0, signal.SIGKILL)
    self.scheduled = False
    self.write()

unacked._DeferredBookkeeping.write_scheduled = write_scheduled
from celery.__main__ import main
sys.argv[0] = "celery"
sys.exit(main())
"""


@pytest.fixture
def analytics_only(service):
    with shared_worker_paused("analytics"):
        yield


def _on_the_broker(client: redis.Redis, job_id: str) -> list[str]:
    """Where the broker holds a message of ``job_id``: queue lists and kombu's unacked hash."""
    with current_app.connection_for_write() as connection:
        channel = connection.default_channel
        unacked_key, sep, steps = channel.unacked_key, channel.sep, channel.priority_steps
    lists = [QueueName.ANALYTICS.value] + [f"{QueueName.ANALYTICS.value}{sep}{step}"
                                            for step in steps if step]
    places = [name for name in lists
              if any(job_id.encode() in raw for raw in client.lrange(name, 0, -1))]
    if any(job_id.encode() in raw for raw in client.hvals(unacked_key)):
        places.append(unacked_key)
    return places


def test_a_worker_killed_before_its_deferred_unacked_record_loses_nothing(analytics_only,
                                                                          live_broker, tmp_path):
    if not live_broker.startswith("redis"):
        pytest.skip("kombu's unacked records (and this fast path) exist on Redis only")
    client = redis.Redis.from_url(live_broker)
    victim = processes.worker(live_broker, tmp_path, "unacked-victim", queues="analytics",
                              concurrency=1, JOB_FASTPATH="on")
    victim.args = [sys.executable, "-c", KILLED_IN_THE_WINDOW, *victim.args[1:]]
    victim.start()
    rescuer = None
    try:
        job_id = add_job(QueueName.ANALYTICS, "slow", {"key": "unacked-window", "seconds": 1})
        wait_for(lambda: victim.process.poll() is not None, 30,
                 message="the victim to kill itself in the window")
        assert victim.process.returncode == -signal.SIGKILL, victim.log_text()[-3000:]
        # The window was hit: the broker has no message of the job left to restore.
        assert _on_the_broker(client, job_id) == []
        state = Job.objects.get(pk=job_id).state
        assert state in ("waiting", "active"), state  # not yet claimed, or claimed by the dead child

        rescuer = processes.worker(live_broker, tmp_path, "unacked-rescuer",
                                   queues="analytics").start()
        wait_state(job_id, "completed", timeout=60)
        time.sleep(2)  # a late duplicate would land in the ledger now
        # ``slow`` writes its ledger row after its sleep: a run killed mid-sleep leaves none.
        assert Execution.objects.filter(key="unacked-window").count() == 1, state
    finally:
        victim.kill_group()
        if rescuer:
            rescuer.stop()
