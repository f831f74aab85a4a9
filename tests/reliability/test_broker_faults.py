"""The broker dies or the enqueuing process dies: committed jobs still run, once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.models import Job
from tasks.queues import QueueName, add_job
from tasks.worker import presence
from tests import broker_plugin, processes
from tests.integration.helpers import wait_state
from tests.processes import supervise, wait_for
from tests.testapp.models import Execution


@pytest.fixture
def private_redis(service):
    server = broker_plugin.private_server()
    if server is None:
        pytest.skip("TEST_BROKER_URL names an external broker; these tests kill -9 the private one")
    yield server
    if server.process.poll() is not None:
        server.start()


def _enqueuer(tmp_path: Path, broker_url: str, *args: str) -> subprocess.Popen:
    env = processes.base_env(broker_url, tmp_path)
    log = open(tmp_path / "enqueuer.log", "wb")  # noqa: SIM115 (a file, not a pipe nobody drains)
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.enqueuer", *args],
                            env=env, cwd=processes.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)


def _log(tmp_path: Path) -> str:
    return (tmp_path / "enqueuer.log").read_text(errors="replace")[-2000:]


def _committed(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    return [(line.split()[0], float(line.split()[1])) for line in path.read_text().splitlines()
            if line.strip()]


def test_broker_down_at_enqueue_returns_fast_and_runs_later(private_redis, service):
    private_redis.kill()
    try:
        started = time.monotonic()
        job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "while-down"})
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"add_job blocked {elapsed:.2f}s with the broker down"
        job = Job.objects.get(pk=job_id)
        assert job.state == "waiting" and job.published_at is None
    finally:
        private_redis.start()
    wait_for(lambda: supervise(service["worker"], service["promoter"])
             or Job.objects.get(pk=job_id).state == "completed", 60, interval=0.5,
             message="the job to complete")
    time.sleep(2)
    assert Execution.objects.filter(key="while-down").count() == 1


def test_crash_between_commit_and_publish_is_recovered(service, live_broker, tmp_path):
    """The process dies after its commit, before its publish: the job still runs, once.

    On Redis the row was written stamped published, so the reconciler finds it
    (waiting, stamped over ``JOB_STUCK_AFTER`` ago, on no list); on RabbitMQ
    the stamp comes after the publish, so the relay finds it unstamped.
    """
    out = tmp_path / "ids.txt"
    proc = _enqueuer(tmp_path, live_broker, "--die-after-commit", "--key", "crash", "--out", str(out))
    proc.wait(60)
    assert proc.returncode == -9, _log(tmp_path)
    [(job_id, _)] = _committed(out)
    job = Job.objects.get(pk=job_id)
    assert job.state == "waiting"
    assert (job.published_at is not None) == live_broker.startswith("redis")
    job = wait_state(job_id, "completed", timeout=30)
    assert job.published_at is not None
    assert Execution.objects.filter(key="crash0").count() == 1


def test_redis_killed_during_a_burst_of_1000_enqueues_loses_nothing(private_redis, service,
                                                                    live_broker, tmp_path):
    out = tmp_path / "ids.txt"
    proc = _enqueuer(tmp_path, live_broker, "--count", "1000", "--key", "burst", "--out", str(out))
    wait_for(lambda: len(_committed(out)) >= 300 or proc.poll() is not None, 60,
             message="300 commits")
    private_redis.kill()
    time.sleep(1.0)
    private_redis.start()
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # print where it is stuck
        time.sleep(1)
        proc.kill()
        stacks = Path(f"{out}.stacks").read_text()
        raise AssertionError(f"enqueuer stalled:\n{stacks}") from None
    assert proc.returncode == 0, _log(tmp_path)
    committed = _committed(out)
    assert len(committed) == 1000
    assert max(seconds for _, seconds in committed) < 2.0  # no enqueue blocked on the dead broker
    ids = [job_id for job_id, _ in committed]

    def all_done() -> bool:
        supervise(service["worker"], service["promoter"])
        return Job.objects.filter(pk__in=ids, state="completed").count() == 1000

    wait_for(all_done, 120, interval=0.5, message="all 1000 committed jobs to complete")
    time.sleep(2)
    runs = Execution.objects.filter(key__startswith="burst").count()
    assert runs == 1000, f"{runs} executions for 1000 jobs"


def test_queue_resumed_while_the_broker_was_down_is_consumed_again(private_redis, service):
    """Found by the full-strength soak (seed 248853528): a queue paused, then the broker
    lost, then the queue resumed before the worker reconnected was never consumed again
    by that worker. Celery's restarted consumer keeps the paused queue deselected; the
    worker's pause bookkeeping had forgotten it deselected it, so it never added it back.
    """
    worker = service["worker"]
    pid = worker.pid
    seen = len(worker.log_text())
    presence.pause_queue(QueueName.DATA_PROCESSING, by="ops")
    try:
        wait_for(lambda: "queue data-processing is paused" in worker.log_text()[seen:], 10,
                 message="the worker to stop consuming data-processing")
        private_redis.kill()
        presence.resume_queue(QueueName.DATA_PROCESSING, by="ops")  # while the broker is down
        time.sleep(1.0)
        seen = len(worker.log_text())
        private_redis.start()
        wait_for(lambda: "Connected to" in worker.log_text()[seen:], 30,
                 message="the worker to reconnect")
        job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "after-resume"})
        wait_state(job_id, "completed", timeout=20)
        assert worker.pid == pid  # the same worker process reconnected: no restart hid it
    finally:
        presence.resume_queue(QueueName.DATA_PROCESSING, by="ops")
