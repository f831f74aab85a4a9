"""Diagnostics: where enqueue → started goes, step by step, for both systems at idle.

    .venv/bin/python bench/steps.py                  # 200 probes at 50/s per system
    .venv/bin/python bench/steps.py --systems service --jobs 500 --runs 3

Starts a private server and a SQLite database (like ``bench/suite.py``), one
prefork worker (concurrency 2) per system, and sends probe jobs one at a time.
Each process stamps ``time.time()`` at fixed points, and the table shows the
median of each step's per-job milliseconds. The stamps come from wrapping a
few kombu, billiard and Celery internals, so this module is tied to their
versions (kombu 5.7, Celery 5.7); the wrappers cost a few µs per step.

With ``BENCH_STEPS_DIR`` in the environment, ``install()`` (called by both
benchmark apps) adds the worker-side stamps and writes them as JSON lines,
one file per process, into that directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: (stamp, label) in the order a job passes them; a step is the time from the previous stamp.
STEPS = (
    ("sent", "caller: add_job/.delay() until the LPUSH is sent"),
    ("read", "server and wake-up: until the worker reads the BRPOP reply"),
    ("unacked0", "kombu: decode the message"),
    ("unacked1", "kombu: unacked bookkeeping (MULTI ZADD HSET EXEC)"),
    ("received", "Celery: strategy, Request (task_received)"),
    ("applied", "Celery: task_reserved, pool.apply_async"),
    ("written", "event loop turn until the job is written to a child's pipe"),
    ("accepted", "child: wake up, read and unpickle the job"),
    ("prerun", "child: trace set-up until task_prerun"),
    ("body", "child: task_prerun until the body starts (service: the claim)"),
)


def _stamp(record: dict, key: str, value: float | None = None) -> None:
    record[key] = time.time() if value is None else value


def install(app_name: str) -> None:
    """Stamp the worker's steps when ``BENCH_STEPS_DIR`` is set (see the module docstring)."""
    directory = os.environ.get("BENCH_STEPS_DIR")
    if not directory:
        return
    import billiard.pool
    import kombu.transport.redis as kombu_redis
    from celery import signals
    from celery.events.dispatcher import EventDispatcher
    from celery.worker.request import Request

    from bench import probes

    jobs: dict[str, dict] = {}  # task id -> stamps (main process, or one child)
    last: dict[str, float] = {}  # stamps taken before the task id is known
    writes: list[float] = []
    flushes: list[list[float]] = []
    current: dict[str, str] = {}

    def wrap(owner, name, before=None, after=None):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if before:
                before(*args, **kwargs)
            try:
                return original(*args, **kwargs)
            finally:
                if after:
                    after(*args, **kwargs)

        setattr(owner, name, wrapper)

    wrap(kombu_redis.Channel, "_brpop_read", before=lambda *a, **k: _stamp(last, "read"))
    wrap(kombu_redis.QoS, "append", before=lambda *a, **k: _stamp(last, "unacked0"),
         after=lambda *a, **k: _stamp(last, "unacked1"))  # fmt: skip

    def applied(pool, func, args=(), *rest, **kwargs):
        _stamp(jobs.setdefault(args[1], {}), "applied")  # args[1]: the task id

    wrap(billiard.pool.Pool, "apply_async", after=applied)

    def accepted(request, pid, time_accepted):  # the child's monotonic stamp, as Celery converts it
        _stamp(jobs.setdefault(request.id, {}), "accepted",
               time.time() - (time.monotonic() - time_accepted))  # fmt: skip

    wrap(Request, "on_accepted", before=accepted)
    flush = EventDispatcher.flush

    def timed_flush(self, *args, **kwargs):
        started = time.time()
        try:
            return flush(self, *args, **kwargs)
        finally:
            flushes.append([started, time.time()])

    EventDispatcher.flush = timed_flush
    send_offset = billiard.pool._get_send_offset

    def timed_send_offset(connection):
        send = send_offset(connection)

        def timed(buf, offset):
            writes.append(time.time())
            return send(buf, offset)

        return timed

    billiard.pool._get_send_offset = timed_send_offset

    @signals.task_received.connect(weak=False)
    def received(request=None, **_: object) -> None:
        record = jobs.setdefault(request.id, {})
        record.update(last)
        _stamp(record, "received")

    @signals.task_prerun.connect(weak=False)
    def prerun(task_id=None, **_: object) -> None:
        current["id"] = task_id
        _stamp(jobs.setdefault(task_id, {}), "prerun")

    started = probes.probe_started

    def probe_started(t0: float, kind: str) -> None:
        record = jobs.setdefault(current.get("id", ""), {})
        _stamp(record, "body")
        record["t0"] = t0
        started(t0, kind)

    probes.probe_started = probe_started

    def dump(**_: object) -> None:
        path = Path(directory) / f"{app_name}-{os.getpid()}.jsonl"
        with open(path, "a") as out:
            out.write(json.dumps({"jobs": jobs, "writes": writes, "flushes": flushes}) + "\n")
        jobs.clear()
        writes.clear()
        flushes.clear()

    signals.task_postrun.connect(dump, weak=False)  # children: after each job
    signals.worker_shutdown.connect(dump, weak=False)  # main process: once


def _collect(directory: Path, app_name: str) -> list[dict]:
    """Join the processes' stamps per job; the pipe write and event flush by time."""
    jobs: dict[str, dict] = {}
    writes: list[float] = []
    flushes: list[list[float]] = []
    for path in directory.glob(f"{app_name}-*.jsonl"):
        for line in path.read_text().splitlines():
            part = json.loads(line)
            for task_id, stamps in part["jobs"].items():
                jobs.setdefault(task_id, {}).update(stamps)
            writes += part["writes"]
            flushes += part["flushes"]
    writes.sort()
    for record in jobs.values():
        if "applied" in record and "accepted" in record:
            window = [w for w in writes if record["applied"] <= w <= record["accepted"]]
            if window:
                record["written"] = window[0]
            flush = [f for f in flushes if record["applied"] <= f[0] <= record["accepted"]]
            if flush:
                record["flush"] = flush[0]
    return list(jobs.values())


def _step_ms(record: dict) -> dict[str, float]:
    """Milliseconds per step; a step not stamped (solo, threads) counts in the next one."""
    out, previous = {}, "t0"
    for stamp, _ in STEPS:
        if stamp in record and previous in record:
            out[stamp] = 1000 * (record[stamp] - record[previous])
            previous = stamp
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_system(
    system: str, env: dict, tmp: Path, jobs: int, rate: float, pool: str = "prefork"
) -> list[dict]:
    """Send ``jobs`` probes at ``rate``/s to a fresh worker; their joined stamps."""
    import redis

    from bench.context import PlainSide, ServiceSide
    from bench.harness import FINISHED_KEY, Worker, wait_until

    directory = tmp / f"steps-{system}-{time.monotonic_ns()}"
    directory.mkdir()
    side = ServiceSide() if system == "service" else PlainSide()
    side.close()
    counter = redis.Redis.from_url(env["BENCH_COUNTER_URL"])
    sent: dict[float, float] = {}
    sends: list[float] = []
    connection = redis.connection.AbstractConnection
    send_packed = connection.send_packed_command

    def timed_send(self, command, check_health=True):
        sends.append(time.time())
        return send_packed(self, command, check_health)

    worker = Worker(
        system, {**env, "BENCH_STEPS_DIR": str(directory)}, tmp / f"{directory.name}.log", pool=pool
    )
    with worker:
        connection.send_packed_command = timed_send
        try:
            for kind, count in (("warm", 20), ("idle", jobs)):
                next_at = time.perf_counter()
                for _ in range(count):
                    pause = next_at - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    sends.clear()
                    t0 = time.time()
                    side.one("probe", {"t0": t0, "kind": kind})
                    if kind == "idle" and sends:
                        sent[t0] = sends[-1]  # the publish's last command: the LPUSH
                    next_at += 1 / rate
                wait_until(lambda: counter.llen(FINISHED_KEY), count, worker, poll_s=0.005)
                counter.delete(FINISHED_KEY)
        finally:
            connection.send_packed_command = send_packed
    records = []
    for record in _collect(directory, system):
        if record.get("t0") in sent:
            records.append({**record, "sent": sent[record["t0"]]})
    return records


def report(results: dict[str, list[dict]]) -> str:
    systems = list(results)
    steps = {s: [_step_ms(r) for r in results[s]] for s in systems}
    lines = [f"{'step (median ms per job)':<70}" + "".join(f"{s:>10}" for s in systems)]
    for stamp, label in STEPS:
        cells = "".join(
            f"{_median([m[stamp] for m in steps[s] if stamp in m]):>10.3f}" for s in systems
        )
        lines.append(f"{label:<70}{cells}")
    total = "".join(
        f"{_median([1000 * (r['body'] - r['t0']) for r in results[s]]):>10.3f}" for s in systems
    )
    lines.append(f"{'enqueue → started (median of the totals)':<70}{total}")
    for s in systems:
        flushed = [r for r in results[s] if "flush" in r and "written" in r]
        before = sum(r["flush"][0] < r["written"] for r in flushed)
        took = _median([1000 * (r["flush"][1] - r["flush"][0]) for r in flushed])
        lines.append(f"{s}: task events flushed before the job was written for {before} of "
                     f"{len(results[s])} jobs (a flush: {took:.3f} ms median)")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="service,plain", help="comma-separated")
    parser.add_argument("--jobs", type=int, default=200, help="probes per run (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="probes per second (default 50)")
    parser.add_argument("--runs", type=int, default=1, help="runs per system, alternating")
    parser.add_argument(
        "--pool",
        default="prefork",
        help="worker pool (default prefork; solo and threads have "
        "no pipe write or child steps, their time shows in the next stamped step)",
    )
    args = parser.parse_args(argv)
    from intelgraph.bundled_redis import BundledRedis

    tmp = Path(tempfile.mkdtemp(prefix="intelgraph-steps-"))
    server = BundledRedis(tmp / "redis", appendonly=False)
    server.start()
    try:
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ.update(
            DJANGO_SETTINGS_MODULE="settings.dev", DATABASE_URL=f"sqlite:///{tmp / 'steps.sqlite3'}",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            REDIS_URL=server.url(1), BENCH_BROKER_URL=server.url(1),
            BENCH_COUNTER_URL=server.url(0), BENCH_SERVER_DIR=str(server.data_dir),
        )  # fmt: skip
        from django.core.management import call_command

        from bench import plain_app, service_app  # noqa: F401  (django.setup(), task registration)

        call_command("migrate", verbosity=0)
        systems = args.systems.split(",")
        results: dict[str, list[dict]] = {s: [] for s in systems}
        for i in range(args.runs):
            for system in systems if i % 2 == 0 else systems[::-1]:
                results[system] += run_system(
                    system, dict(os.environ), tmp, args.jobs, args.rate, args.pool
                )
        print(report(results))
        return 0
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
