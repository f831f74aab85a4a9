"""Scenario 3: enqueue → started and enqueue → finished, at idle and at 50 % load.

One prefork worker (concurrency 2) per system. Probe jobs carry ``t0``, the
caller's ``time.time()`` just before ``add_job`` / ``.delay()``; the job body
records when it started, and a ``task_postrun`` handler when it finished
(for the service: after the completion UPDATE). Jobs are sent one at a
time on a fixed schedule (open loop): at idle 50 per second; at load half
the system's own no-op drain rate (from scenario 2 in the same run, else
measured here), for a fixed time.

BullMQ (when the suite runs it): idle only. One worker process, concurrency 2
(``bullmq.CONCURRENCY``), the same warm-up and counts; the Node script runs the
same open loop and takes ``t0`` just before each ``queue.add``; the job records
its start first thing, and the worker's ``completed`` event (after BullMQ moved
the job to completed) its finish, in the same lists and format.
"""

from __future__ import annotations

import statistics
import time

from bench import bullmq
from bench.context import Context
from bench.harness import percentile, wait_until
from bench.instrument.keys import COUNTER_KEY, FINISHED_KEY, STARTED_KEY

IDLE_RATE = 50.0
LOAD_FRACTION = 0.5


def sizes(short: bool) -> dict:
    return {"idle": 60, "load_s": 3.0} if short else {"idle": 200, "load_s": 10.0}


def _capacity(ctx: Context, system: str) -> float:
    """Jobs/s a worker drains: scenario 2's median, or a quick 2,000-job drain."""
    throughput = ctx.results.get("throughput")
    if throughput:
        return throughput["median"][system]["drain_rate"]
    side = ctx.side(system)
    ctx.reset()
    side.bulk("noop", [{}] * 2000)
    side.close()
    with ctx.worker(system, "calibrate") as worker:
        first, last = wait_until(lambda: int(ctx.counter.get(COUNTER_KEY) or 0), 2000, worker)
    ctx.reset()
    return 2000 / (last - first)


def _parse(entries: list[bytes]) -> list[float]:
    """Milliseconds from ``t0`` per recorded ``kind t0 time`` entry."""
    out = []
    for entry in entries:
        _, t0, t = entry.decode().split()
        out.append(1000 * (float(t) - float(t0)))
    return out


def _send(side, kind: str, rate: float, count: int) -> float:
    """``count`` probes at ``rate``/s on a fixed schedule (open loop); seconds it took."""
    if side.system == "bullmq":
        return side.probes(kind, rate, count)  # the same loop, in Node
    interval = 1.0 / rate
    began = time.perf_counter()
    next_at = began
    for _ in range(count):
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        side.one("probe", {"t0": time.time(), "kind": kind})
        next_at += interval
    return time.perf_counter() - began


def _phase(ctx: Context, side, worker, kind: str, rate: float, count: int) -> dict:
    """Send ``count`` probes at ``rate``/s; wait for all to finish; latency percentiles."""
    ctx.counter.delete(STARTED_KEY, FINISHED_KEY)
    sent_s = _send(side, kind, rate, count)
    wait_until(lambda: ctx.counter.llen(FINISHED_KEY), count, worker, poll_s=0.005)
    started = _parse(ctx.counter.lrange(STARTED_KEY, 0, -1))
    finished = _parse(ctx.counter.lrange(FINISHED_KEY, 0, -1))
    return {
        "offered_rate": rate,
        "sent_rate": count / sent_s,
        "jobs": count,
        "started_p50_ms": percentile(started, 50),
        "started_p99_ms": percentile(started, 99),
        "finished_p50_ms": percentile(finished, 50),
        "finished_p99_ms": percentile(finished, 99),
    }


def one_run(ctx: Context, system: str, n: dict, capacity: float | None) -> dict:
    """Idle, then (with a ``capacity``) 50 % load, on one worker."""
    ctx.reset()
    side = ctx.side(system)
    side.close()
    concurrency = bullmq.CONCURRENCY if system == "bullmq" else 2
    with ctx.worker(system, "latency", concurrency=concurrency) as worker:
        _phase(ctx, side, worker, "warm", IDLE_RATE, 20)  # worker up, connections open
        idle = _phase(ctx, side, worker, "idle", IDLE_RATE, n["idle"])
        load = {}
        if capacity is not None:
            rate = LOAD_FRACTION * capacity
            load = _phase(ctx, side, worker, "load", rate, max(20, int(rate * n["load_s"])))
    ctx.reset()
    return {
        **{f"idle_{k}": v for k, v in idle.items()},
        **{f"load_{k}": v for k, v in load.items()},
    }


def run(ctx: Context, runs: int) -> dict:
    n = sizes(ctx.short)
    # BullMQ: idle only (the issue asks for no load figure for it).
    capacity = {s: None if s == "bullmq" else _capacity(ctx, s) for s in ctx.systems}
    per_run: dict[str, list[dict]] = {s: [] for s in ctx.systems}
    for i in range(runs):
        for system in ctx.order(i):
            r = one_run(ctx, system, n, capacity[system])
            per_run[system].append(r)
            text = (f"idle started p50 {r['idle_started_p50_ms']:.1f} p99 "
                    f"{r['idle_started_p99_ms']:.1f} ms, finished p50 "
                    f"{r['idle_finished_p50_ms']:.1f} p99 {r['idle_finished_p99_ms']:.1f} ms")
            if "load_offered_rate" in r:
                text += (f"; at {r['load_offered_rate']:.0f}/s started p50 "
                         f"{r['load_started_p50_ms']:.1f} p99 {r['load_started_p99_ms']:.1f} ms")
            print(f"  [{ctx.database}] latency run {i + 1}/{runs} {system:<7}: {text}", flush=True)
    median = {
        s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in per_run.items()
    }
    return {"sizes": n, "capacity": capacity, "runs": per_run, "median": median}
