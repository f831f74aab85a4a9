"""Scenario 5: backlog priority with a busy worker.

10,000 (``--short``: 1,000) BACKGROUND probe jobs are queued, one prefork
worker (concurrency 2) starts on them; once 200 have finished, 100 CRITICAL
jobs arrive. They arrive two ways, each measured on both systems:

- **one by one**: 100 ``add_job`` / 100 ``apply_async`` calls, as jobs sent
  by separate requests arrive. Plain Celery has nothing else (its "bulk" in
  scenario 1 is the same loop on one producer), so this is the like-for-like
  comparison and the row the target is read from.
- **in one call**: one ``add_bulk`` of 100 (one transaction: the jobs reach
  Redis together after its commit) against plain Celery's 100
  ``apply_async`` on one producer.

Measured: how many BACKGROUND jobs finish after the first CRITICAL was sent
and before the last CRITICAL one finishes, the time from sending to that
finish, and how long sending the 100 took.

BullMQ (when the suite runs it): the same shape, one worker process at
concurrency 2 (``bullmq.CONCURRENCY``), ``JobPriority`` numbers as BullMQ
priorities unchanged (BullMQ also runs lower numbers first). The backlog is
``addBulk``-ed; the CRITICAL jobs arrive as 100 awaited ``queue.add`` (one by
one) or one ``addBulk`` of 100 (in one call), sent and timed in Node.
"""

from __future__ import annotations

import statistics
import time

from bench import bullmq
from bench.context import Context
from bench.harness import wait_until
from bench.instrument.keys import FINISHED_KEY

BACKGROUND, CRITICAL = 5, 1  # tasks.jobs.config.JobPriority
BACKLOG = 10000
SHORT_BACKLOG = 1000  # --short: still far more than the 100 CRITICAL take
URGENT = 100
BUSY_AFTER = 200
ARRIVALS = ("one", "bulk")  # one by one; in one call


def _send_critical(side, arrival: str) -> tuple[float, float]:
    """Send the ``URGENT`` CRITICAL probes; (sent at, seconds the sending took)."""
    if side.system == "bullmq":
        return side.critical(arrival, URGENT, CRITICAL)  # timed in Node
    sent_at = time.time()
    data = {"t0": sent_at, "kind": "c"}
    if arrival == "one":
        for _ in range(URGENT):
            side.one("probe", data, priority=CRITICAL)
    else:
        side.bulk("probe", [data] * URGENT, priority=CRITICAL)
    return sent_at, time.time() - sent_at


def one_run(ctx: Context, system: str, backlog: int, arrival: str) -> dict:
    ctx.reset()
    side = ctx.side(system)
    # The enqueuing process keeps its connections, as a Django process does
    # (``CONN_MAX_AGE``) and as plain Celery keeps its broker connection: the
    # CRITICAL jobs below are not also timed opening a database connection.
    side.bulk("probe", [{"t0": 0.0, "kind": "b"}] * backlog, priority=BACKGROUND)
    concurrency = bullmq.CONCURRENCY if system == "bullmq" else 2
    with ctx.worker(system, f"priority-{arrival}", concurrency=concurrency) as worker:
        wait_until(lambda: ctx.counter.llen(FINISHED_KEY), BUSY_AFTER, worker)
        sent_at, enqueued_s = _send_critical(side, arrival)
        side.close()

        def critical_done() -> int:
            return sum(1 for e in ctx.counter.lrange(FINISHED_KEY, 0, -1) if e.startswith(b"c "))

        wait_until(critical_done, URGENT, worker, poll_s=0.02)
        entries = [e.decode().split() for e in ctx.counter.lrange(FINISHED_KEY, 0, -1)]
    last_critical = max(float(t) for kind, _, t in entries if kind == "c")
    overtaken = sum(
        1 for kind, _, t in entries if kind == "b" and sent_at < float(t) <= last_critical
    )
    ctx.reset()
    return {
        "background_before_last_critical": overtaken,
        "critical_done_s": last_critical - sent_at,
        "critical_enqueue_s": enqueued_s,
    }


def run(ctx: Context, runs: int) -> dict:
    backlog = SHORT_BACKLOG if ctx.short else BACKLOG
    out: dict = {"backlog": backlog, "urgent": URGENT}
    for arrival in ARRIVALS:
        per_run: dict[str, list[dict]] = {s: [] for s in ctx.systems}
        for i in range(runs):
            for system in ctx.order(i):
                r = one_run(ctx, system, backlog, arrival)
                per_run[system].append(r)
                print(
                    f"  [{ctx.database}] priority ({'one by one' if arrival == 'one' else 'one call'}) "
                    f"run {i + 1}/{runs} {system:<7}: "
                    f"{r['background_before_last_critical']} BACKGROUND finished before the last "
                    f"CRITICAL; CRITICAL done in {r['critical_done_s']:.2f}s "
                    f"(enqueued in {1000 * r['critical_enqueue_s']:.1f} ms)",
                    flush=True,
                )
        out[arrival] = {
            "runs": per_run,
            "median": {
                s: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                for s, rs in per_run.items()
            },
        }
    return out
