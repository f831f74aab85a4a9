"""BullMQ's Node script (``bench/bullmq/bench.mjs``) against a private server.

The server is started here the way the benchmark starts its own (the bundled
``valkey-server`` on a free port, in this test's temporary folder); the Redis
on 6379 is never touched. Skipped, with the reason printed, where Node ≥ 18 or
npm is missing or ``npm ci`` cannot reach the registry (``bullmq.prepare``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench import bullmq
from bench.harness import wait_until
from bench.instrument.keys import COUNTER_KEY, FINISHED_KEY, STARTED_KEY
from intelgraph.bundled_redis import BundledRedis


@pytest.fixture(scope="module")
def installed() -> bullmq.Setup:
    setup = bullmq.prepare()
    print(setup.describe())
    if not setup.ready:
        pytest.skip(setup.describe())
    return setup


@pytest.fixture
def env(tmp_path: Path, installed) -> Iterator[dict[str, str]]:
    server = BundledRedis(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        yield {**os.environ, "BENCH_BULLMQ_URL": server.url(bullmq.DB),
               "BENCH_COUNTER_URL": server.url(0)}  # fmt: skip
    finally:
        server.stop()


def test_one_worker_process_drains_twenty_jobs_with_one_incr_each(env, tmp_path: Path):
    out = subprocess.run(bullmq.command("enqueue-bulk", env["BENCH_BULLMQ_URL"], jobs=20),
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert bullmq.parse_line(out.stdout)["jobs"] == 20
    store = redis.Redis.from_url(env["BENCH_BULLMQ_URL"])
    counter = redis.Redis.from_url(env["BENCH_COUNTER_URL"])
    assert bullmq.depth(store) == 20

    with bullmq.NodeWorker(env, tmp_path / "worker.log", concurrency=2) as worker:
        first, last = wait_until(lambda: int(counter.get(COUNTER_KEY) or 0), 20, worker,
                                 stall_s=30)  # fmt: skip
    assert worker.process.returncode == 0, worker.log_tail()
    assert '"completed":20' in worker.log_tail()  # its closing line, after SIGTERM
    assert int(counter.get(COUNTER_KEY)) == 20
    assert bullmq.depth(store) == 0
    bullmq.verify_completed(store, 20)
    assert counter.keys("bull:*") == [] and counter.dbsize() == 1  # BullMQ kept to its database


def test_critical_jobs_run_before_the_background_backlog_and_probes_record_times(env, tmp_path):
    side = bullmq.BullMQSide(env, tmp_path / "serve.log")
    counter = redis.Redis.from_url(env["BENCH_COUNTER_URL"])
    try:
        side.bulk("probe", [{"t0": 0.0, "kind": "b"}] * 20, priority=5)
        sent_at, enqueue_s = side.critical("bulk", 5, priority=1)
        assert enqueue_s >= 0 and sent_at > 1.7e9
        sent_s = side.probes("idle", 200.0, 5)
        assert sent_s >= 4 / 200  # five on a schedule of 5 ms
        with bullmq.NodeWorker(env, tmp_path / "worker.log", concurrency=1) as worker:
            wait_until(lambda: counter.llen(FINISHED_KEY), 30, worker, stall_s=30)
    finally:
        side.shutdown()
    finished = [entry.decode().split() for entry in counter.lrange(FINISHED_KEY, 0, -1)]
    # BullMQ runs jobs without a priority first, then priority 1, 2, … (lower first).
    assert [kind for kind, _, _ in finished] == ["idle"] * 5 + ["c"] * 5 + ["b"] * 20
    started = [entry.decode().split() for entry in counter.lrange(STARTED_KEY, 0, -1)]
    for kind, t0, t in started + finished:
        if kind != "b":
            assert 0 <= float(t) - float(t0) < 30, (kind, t0, t)
