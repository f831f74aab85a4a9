"""Scenario 4: many delayed jobs pending; promotion of due ones.

Service:
1. one prefork worker (concurrency 2) runs; its RSS (main + pool) is read
   after a warm-up, after N delayed jobs are enqueued and after the due
   segment below (it must not grow with N: delays live in the database);
2. N delayed no-op jobs (``add_bulk``, 1,000 a call), due evenly over one
   hour starting 10 minutes from now, so none falls due during the
   measurement: enqueue rate, database and Redis memory before/after;
3. ``manage.py promoter`` starts; D probe jobs fall due at 1,000 per second:
   promotion lateness = ``published_at − run_at`` from their rows, p50/p99;
4. the worker stops; B jobs fall due at the same instant: the promoter's
   rate = B / (last ``published_at`` − due time).
Plain Celery baseline: P no-op tasks with ``countdown`` over the same hour;
Celery's worker holds ETA tasks in memory, so its RSS is read before and
after it has fetched them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.context import BATCH, Context, PlainSide, ServiceSide, timed
from bench.harness import ROOT, percentile, wait_until
from bench.instrument.keys import COUNTER_KEY

HORIZON_START_S = 600.0
HORIZON_S = 3600.0
DUE_RATE = 1000.0
MB = 1024 * 1024
#: ``manage.py promoter``, with the benchmark's processors registered (it publishes them).
PROMOTER = (
    "import bench.service_app; from django.core.management import call_command; "
    "call_command('promoter')"
)


def sizes(short: bool, pending: int | None) -> dict[str, int]:
    if short:
        return {"pending": pending or 5000, "due": 2000, "burst": 2000, "plain_eta": 1000}
    return {"pending": pending or 100000, "due": 10000, "burst": 20000, "plain_eta": 20000}


def database_bytes(ctx: Context) -> int:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    name = str(connection.settings_dict["NAME"])
    return sum(os.path.getsize(p) for p in (name, name + "-wal") if os.path.exists(p))


def redis_bytes(ctx: Context) -> int:
    return int(ctx.broker.info("memory")["used_memory"])


def _warm(ctx: Context, side, worker, jobs: int = 50) -> None:
    ctx.counter.delete(COUNTER_KEY)
    side.bulk("noop", [{}] * jobs)
    side.close()
    wait_until(lambda: int(ctx.counter.get(COUNTER_KEY) or 0), jobs, worker)
    time.sleep(1.0)


def _enqueue_due(at: list[float], name: str, data) -> None:
    """``add_bulk`` with each job's delay computed just before its batch, so it falls due at ``at[i]``."""
    from tasks.enqueue.api import add_bulk

    for start in range(0, len(at), BATCH):
        now = time.time()
        add_bulk([
            {"queue": "analytics", "name": name, "data": data(at[i]),
             "delay": max(0.0, at[i] - now) * 1000}  # the job API takes milliseconds
            for i in range(start, min(start + BATCH, len(at)))
        ])  # fmt: skip


def _start_promoter(ctx: Context) -> subprocess.Popen:
    log = open(ctx.tmp / f"promoter-{ctx.database}.log", "ab")  # noqa: SIM115 (owned by the child)
    process = subprocess.Popen(
        [sys.executable, "-c", PROMOTER], cwd=ROOT, env=ctx.env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _promoted(name: str, run_at_to: datetime) -> tuple[int, list[float], float]:
    """(unpublished count, lateness seconds, last published epoch) of ``name`` rows due by then."""
    from tasks.models import Job, JobState

    rows = Job.objects.filter(name=name, run_at__lte=run_at_to).values_list(
        "state", "run_at", "published_at"
    )
    rows = list(rows)
    waiting = sum(1 for state, _, pub in rows if pub is None or state == JobState.DELAYED)
    late = [(pub - run_at).total_seconds() for _, run_at, pub in rows if pub is not None]
    last = max((pub.timestamp() for _, _, pub in rows if pub is not None), default=0.0)
    return waiting, late, last


def _check_due_at(name: str, earliest: float) -> None:
    """Every ``name`` row falls due no earlier than ``earliest`` (epoch seconds), or the
    delays were not honoured and the lateness figures would mean nothing (a seconds /
    milliseconds mix-up once made them so): refuse the figures."""
    from django.db.models import Min

    from tasks.models import Job

    first = Job.objects.filter(name=name).aggregate(first=Min("run_at"))["first"]
    if first is None or first.timestamp() < earliest - 0.05:
        raise RuntimeError(f"{name}: a job falls due at {first}, before "
                           f"{datetime.fromtimestamp(earliest, UTC)}: delays not honoured")


def _wait_promoted(name: str, total: int, until: datetime, promoter, stall_s: float = 60.0):
    def done() -> int:
        from django.db import connections

        waiting, _, _ = _promoted(name, until)
        connections.close_all()
        return total - waiting

    def check() -> None:
        if promoter.poll() is not None:
            raise RuntimeError(f"promoter exited ({promoter.returncode})")

    wait_until(lambda: (check(), done())[1], total, None, stall_s=stall_s, poll_s=0.2)
    return _promoted(name, until)


def service(ctx: Context, n: dict) -> dict:
    ctx.reset()
    side = ServiceSide()
    out: dict = {"db_bytes_before": database_bytes(ctx), "redis_bytes_before": redis_bytes(ctx)}
    with ctx.worker("service", "delayed") as worker:
        _warm(ctx, side, worker)
        out["worker_rss_before"] = worker.rss_bytes()
        delays = [HORIZON_START_S + HORIZON_S * i / n["pending"] for i in range(n["pending"])]
        seconds = timed(side.bulk, "noop", [{}] * n["pending"], delays=delays)
        side.close()
        out["enqueue_s"] = seconds
        out["enqueue_rate"] = n["pending"] / seconds
        print(
            f"  [{ctx.database}] delayed: {n['pending']:,} enqueued in {seconds:.1f}s", flush=True
        )
        time.sleep(3.0)  # a heartbeat tick or more in the worker
        out["db_bytes_after"] = database_bytes(ctx)
        out["redis_bytes_after"] = redis_bytes(ctx)
        out["worker_rss_after_enqueue"] = worker.rss_bytes()

        promoter = _start_promoter(ctx)
        try:
            first_due = time.time() + 3.0 + n["due"] / max(out["enqueue_rate"], 1.0)
            due = [first_due + i / DUE_RATE for i in range(n["due"])]
            _enqueue_due(due, "bench-probe", lambda t: {"t0": t, "kind": "due"})
            _check_due_at("bench-probe", due[0])
            side.close()
            until = datetime.fromtimestamp(due[-1] + 1, UTC)
            _, late, _ = _wait_promoted("bench-probe", n["due"], until, promoter)
            out["lateness_p50_s"] = percentile(late, 50)
            out["lateness_p99_s"] = percentile(late, 99)
            out["lateness_max_s"] = max(late)
            out["worker_rss_after"] = worker.rss_bytes()
            worker.stop()

            burst_at = time.time() + 3.0 + n["burst"] / max(out["enqueue_rate"], 1.0)
            _enqueue_due([burst_at] * n["burst"], "bench-sleep", lambda t: {"ms": 0})
            _check_due_at("bench-sleep", burst_at)
            side.close()
            until = datetime.fromtimestamp(burst_at + 1, UTC)
            _, late, last = _wait_promoted("bench-sleep", n["burst"], until, promoter)
            if last <= burst_at:
                raise RuntimeError("the burst was published before it fell due")
            out["burst_promote_s"] = last - burst_at
            out["burst_rate"] = n["burst"] / (last - burst_at)
        finally:
            _stop(promoter)
    ctx.reset()
    return out


def plain(ctx: Context, n: dict) -> dict:
    """Plain Celery keeps ETA tasks in the worker: RSS before and after it fetched P of them."""
    ctx.reset()
    side = PlainSide()
    out: dict = {"redis_bytes_before": redis_bytes(ctx)}
    with ctx.worker("plain", "delayed") as worker:
        _warm(ctx, side, worker)
        out["worker_rss_before"] = worker.rss_bytes()
        delays = [HORIZON_START_S + HORIZON_S * i / n["plain_eta"] for i in range(n["plain_eta"])]
        seconds = timed(side.bulk, "noop", [{}] * n["plain_eta"], delays=delays)
        out["enqueue_rate"] = n["plain_eta"] / seconds
        wait_until(lambda: n["plain_eta"] - ctx.depth("plain"), n["plain_eta"], worker, poll_s=0.2)
        time.sleep(3.0)
        out["redis_bytes_after"] = redis_bytes(ctx)
        out["worker_rss_after"] = worker.rss_bytes()
    ctx.reset()
    return out


def run(ctx: Context, pending: int | None) -> dict:
    n = sizes(ctx.short, pending)
    s = service(ctx, n)
    p = plain(ctx, n)
    print(
        f"  [{ctx.database}] delayed: service {n['pending']:,} pending: enqueue "
        f"{s['enqueue_rate']:.0f}/s, db +{(s['db_bytes_after'] - s['db_bytes_before']) / MB:.0f} MB, "
        f"redis +{(s['redis_bytes_after'] - s['redis_bytes_before']) / MB:.1f} MB, worker RSS "
        f"{s['worker_rss_before'] / MB:.0f} -> {s['worker_rss_after'] / MB:.0f} MB; lateness p50 "
        f"{s['lateness_p50_s']:.3f}s p99 {s['lateness_p99_s']:.3f}s; promoter {s['burst_rate']:.0f}/s. "
        f"plain {n['plain_eta']:,} ETA tasks: worker RSS {p['worker_rss_before'] / MB:.0f} -> "
        f"{p['worker_rss_after'] / MB:.0f} MB",
        flush=True,
    )
    return {"sizes": n, "service": s, "plain": p}
