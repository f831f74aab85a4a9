"""Diagnostics: where enqueue → started goes, step by step, for both systems at idle.

    .venv/bin/python bench/steps.py                  # 200 probes at 50/s per system
    .venv/bin/python bench/steps.py --systems service --jobs 500 --runs 3

Starts a private server and a SQLite database (like ``bench/suite.py``), one
prefork worker (concurrency 2) per system, and sends probe jobs one at a time.
Each process stamps ``time.time()`` at fixed points, and the table shows the
median of each step's per-job milliseconds. The stamps come from wrapping a
few kombu, billiard and Celery internals, so this module is tied to their
versions (kombu 5.7, Celery 5.7); the wrappers cost a few µs per step.

This is the driver side. The worker-side stamps live in
``bench/instrument/steps.py`` (installed by both benchmark apps when
``BENCH_STEPS_DIR`` is set); this module reads the JSON lines they write.
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

from bench.instrument.steps import STEPS  # noqa: E402


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
    from bench.harness import Worker, wait_until
    from bench.instrument.keys import FINISHED_KEY

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
