"""Scenarios 1 and 2: enqueue rates and drain rates, service vs plain Celery.

Per run and system (the order alternates between runs):
1a. ``one``: N no-op jobs one call at a time (``add_job`` / plain ``.delay()``);
1b. ``one_tx``: N no-op jobs one call at a time, each in a transaction that also
    writes one row of the caller's own (``add_job`` / ``.delay()`` at commit);
1c. ``bulk``: N no-op jobs in batches of 1,000 (``add_bulk`` / ``apply_async``
    on one kombu producer per batch), no worker running;
2a. ``drain``: one prefork worker, concurrency 2, drains the 1c jobs;
2b. ``sleep``: jobs that sleep 10 ms, drained by one worker with 8 threads;
2c. ``batched`` (service only): the 1c jobs of a ``@processor(batch=100)``, one
    message per 100 jobs, drained by one prefork worker at concurrency 1.
Drain rate = jobs / (counter first > 0 → counter = jobs): start-up is not counted.

BullMQ (when the suite runs it): 1a with awaited ``queue.add`` calls, 1c with
``queue.addBulk`` of 1,000, both timed in Node around the same loop; 2a once
per concurrency in ``bullmq.DRAIN_CONCURRENCIES``, each time on a fresh 1c
batch with a fresh worker process, measured by the same ``_drain``; the best is
its ``drain_rate``. No 1b (BullMQ has no database transaction to join) and no 2b.
"""

from __future__ import annotations

import statistics

from bench import bullmq
from bench.context import Context, order_count, timed
from bench.harness import wait_until
from bench.instrument.keys import COUNTER_KEY

SLEEP_MS = 10
SLEEP_THREADS = 8
#: Jobs per message of the batched no-op (``bench-noop-batch``).
BATCH = 100


def sizes(short: bool, jobs: int | None = None) -> dict[str, int]:
    """``jobs`` overrides the bulk/drain size (the issue's figure is 20,000)."""
    n = (
        {"one": 200, "bulk": 1500, "sleep": 400}
        if short
        else {"one": 2000, "bulk": 10000, "sleep": 3000}
    )
    if jobs:
        n["bulk"] = jobs
    return n


def _counter(ctx: Context) -> int:
    return int(ctx.counter.get(COUNTER_KEY) or 0)


def _drain(ctx: Context, system: str, jobs: int, tag: str, pool: str, concurrency: int) -> dict:
    """Start a worker on the queued jobs; rate, CPU per job (worker, Redis) while draining."""
    worker = ctx.worker(system, tag, pool=pool, concurrency=concurrency)
    mark: dict = {}

    def on_first(value: int) -> None:
        mark.update(value=value, cpu=worker.cpu_seconds(), redis=ctx.redis_cpu_s())

    with worker:
        first, last = wait_until(lambda: _counter(ctx), jobs, worker, on_first=on_first)
        cpu, redis_cpu = worker.cpu_seconds(), ctx.redis_cpu_s()
    done = _counter(ctx)
    if done != jobs:
        raise RuntimeError(f"{system}: counter at {done} after draining {jobs} (duplicates?)")
    if ctx.depth(system):
        raise RuntimeError(f"{system}: {ctx.depth(system)} messages left after the drain")
    measured = jobs - mark["value"]
    seconds = last - first
    return {
        "rate": jobs / seconds if seconds > 0 else float("inf"),
        "seconds": seconds,
        "worker_cpu_us_per_job": 1e6 * (cpu - mark["cpu"]) / measured if measured else None,
        "redis_cpu_us_per_job": 1e6 * (redis_cpu - mark["redis"]) / measured if measured else None,
    }


def _verify_completed(system: str, name: str, jobs: int) -> None:
    if system != "service":
        return
    from django.db.models import Count

    from tasks.models import Job

    states = dict(Job.objects.filter(name=name).values_list("state").annotate(n=Count("id")))
    if states != {"completed": jobs}:
        raise RuntimeError(f"expected {jobs} completed {name} rows, found {states}")


def one_run(ctx: Context, system: str, n: dict[str, int]) -> dict:
    if system == "bullmq":
        return _bullmq_run(ctx, n)
    side = ctx.side(system)
    out: dict = {}

    ctx.reset()
    seconds = timed(lambda: [side.one("noop", {}) for _ in range(n["one"])])
    ctx.expect_depth(system, n["one"])
    out["enqueue_one_rate"] = n["one"] / seconds

    ctx.reset()
    seconds = timed(lambda: [side.one_in_transaction("noop", {}) for _ in range(n["one"])])
    ctx.expect_depth(system, n["one"])
    if order_count() != n["one"]:
        raise RuntimeError(f"{system}: {order_count()} order rows, expected {n['one']}")
    out["enqueue_one_tx_rate"] = n["one"] / seconds

    ctx.reset()
    seconds = timed(side.bulk, "noop", [{}] * n["bulk"])
    ctx.expect_depth(system, n["bulk"])
    out["enqueue_bulk_rate"] = n["bulk"] / seconds
    side.close()
    drain = _drain(ctx, system, n["bulk"], "drain", "prefork", 2)
    _verify_completed(system, "bench-noop", n["bulk"])
    out.update({f"drain_{k}": v for k, v in drain.items()})

    if system == "service":
        ctx.reset()
        side.bulk("noop-batch", [{}] * n["bulk"])
        ctx.expect_depth(system, -(-n["bulk"] // BATCH))
        side.close()
        batched = _drain(ctx, system, n["bulk"], "batched", "prefork", 1)
        _verify_completed(system, "bench-noop-batch", n["bulk"])
        out.update({f"batched_drain_{k}": v for k, v in batched.items()})

    ctx.reset()
    side.bulk("sleep", [{"ms": SLEEP_MS}] * n["sleep"])
    side.close()
    sleep = _drain(ctx, system, n["sleep"], "sleep", "threads", SLEEP_THREADS)
    _verify_completed(system, "bench-sleep", n["sleep"])
    out.update({f"sleep_{k}": v for k, v in sleep.items() if k in ("rate", "seconds")})
    ctx.reset()
    return out


def _bullmq_run(ctx: Context, n: dict[str, int]) -> dict:
    side = ctx.side("bullmq")
    out: dict = {}

    ctx.reset()
    seconds = side.one_at_a_time("noop", n["one"])
    ctx.expect_depth("bullmq", n["one"])
    out["enqueue_one_rate"] = n["one"] / seconds

    drains = {}
    for concurrency in bullmq.DRAIN_CONCURRENCIES:
        ctx.reset()
        seconds = side.bulk("noop", [{}] * n["bulk"])
        ctx.expect_depth("bullmq", n["bulk"])
        out.setdefault("enqueue_bulk_rate", n["bulk"] / seconds)  # the first batch, as above
        drains[concurrency] = _drain(ctx, "bullmq", n["bulk"], f"drain-c{concurrency}", "node",
                                     concurrency)  # fmt: skip
        bullmq.verify_completed(ctx.bullmq, n["bulk"])
        out[f"drain_c{concurrency}_rate"] = drains[concurrency]["rate"]
    best = max(drains, key=lambda c: drains[c]["rate"])
    out["drain_concurrency"] = best
    out.update({f"drain_{k}": v for k, v in drains[best].items()})
    ctx.reset()
    return out


def _summary(r: dict) -> str:
    cpu = r["drain_worker_cpu_us_per_job"]
    text = f"one {r['enqueue_one_rate']:.0f}/s, "
    if "enqueue_one_tx_rate" in r:
        text += f"in a transaction {r['enqueue_one_tx_rate']:.0f}/s, "
    text += (f"bulk {r['enqueue_bulk_rate']:.0f}/s, "
             f"drain {r['drain_rate']:.0f}/s ({'—' if cpu is None else f'{cpu:.0f}'} µs CPU/job)")
    if "drain_concurrency" in r:
        tried = ", ".join(f"c{c} {r[f'drain_c{c}_rate']:.0f}/s" for c in bullmq.DRAIN_CONCURRENCIES)
        text += f" at concurrency {r['drain_concurrency']} ({tried})"
    if "sleep_rate" in r:
        text += f", sleep-10ms {r['sleep_rate']:.0f}/s"
    if "batched_drain_rate" in r:
        text += (f", batched c1 {r['batched_drain_rate']:.0f}/s "
                 f"({r['batched_drain_worker_cpu_us_per_job']:.0f} µs CPU/job)")
    return text


def _median(key: str):
    """BullMQ's best concurrency is one of those tried, even over an even number of runs."""
    return statistics.median_low if key == "drain_concurrency" else statistics.median


def run(ctx: Context, runs: int, jobs: int | None = None) -> dict:
    n = sizes(ctx.short, jobs)
    per_run: dict[str, list[dict]] = {s: [] for s in ctx.systems}
    for i in range(runs):
        for system in ctx.order(i):
            r = one_run(ctx, system, n)
            per_run[system].append(r)
            print(f"  [{ctx.database}] throughput run {i + 1}/{runs} {system:<7}: {_summary(r)}",
                  flush=True)  # fmt: skip
    median = {
        s: {k: _median(k)(r[k] for r in rs if r[k] is not None) for k in rs[0]}
        for s, rs in per_run.items()
    }
    return {"sizes": n, "runs": per_run, "median": median}
