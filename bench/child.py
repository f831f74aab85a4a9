"""Run some scenarios against one database; write their figures as JSON.

Started by ``bench/suite.py`` once per database, with ``DATABASE_URL``,
``REDIS_URL``, ``BENCH_BROKER_URL`` and ``BENCH_COUNTER_URL`` in the
environment (Django reads the database once, so one child per database).

    python -m bench.child --database sqlite --scenarios throughput,latency --out f.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

SCENARIOS = ("throughput", "latency", "priority", "delayed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="label: sqlite or postgresql")
    parser.add_argument(
        "--scenarios", required=True, help=f"comma-separated: {','.join(SCENARIOS)}"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--delayed-jobs", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None, help="drain size (scenario 2)")
    parser.add_argument(
        "--systems",
        default="service,plain",
        help="systems scenarios 1-3 and 5 measure (comma-separated: service, plain, and "
        "bullmq with BENCH_BULLMQ_URL set; scenario 4 measures service and plain)",
    )
    parser.add_argument("--tmp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    # Stop like Ctrl+C on SIGTERM (and on SIGINT even when started in the background),
    # so the scenarios' ``finally`` blocks stop their workers and promoter.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import redis
    from django.core.management import call_command

    from bench import plain_app, service_app  # noqa: F401  (django.setup(), task registration)
    from bench.context import Context
    from bench.harness import EXTRA_SYSTEMS, SYSTEMS

    systems = tuple(args.systems.split(","))
    known = SYSTEMS + EXTRA_SYSTEMS
    if not systems or set(systems) - set(known):
        parser.error(f"--systems: a comma-separated subset of {','.join(known)}")
    if "bullmq" in systems and not os.environ.get("BENCH_BULLMQ_URL"):
        parser.error("--systems bullmq needs BENCH_BULLMQ_URL (bench/suite.py sets it)")

    call_command("migrate", verbosity=0)
    ctx = Context(
        env=dict(os.environ),
        tmp=args.tmp,
        database=args.database,
        short=args.short,
        broker=redis.Redis.from_url(os.environ["BENCH_BROKER_URL"]),
        counter=redis.Redis.from_url(os.environ["BENCH_COUNTER_URL"]),
        systems=systems,
        bullmq=redis.Redis.from_url(os.environ["BENCH_BULLMQ_URL"]) if "bullmq" in systems else None,
    )
    try:
        run_scenarios(ctx, args, parser)
    finally:
        ctx.shutdown()
    return 0


def run_scenarios(ctx, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Each scenario in turn; the figures written after each, so a crash keeps them."""
    from bench import service_app
    from tasks import fastpath

    results: dict = {}
    for name in args.scenarios.split(","):
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")
        started = time.monotonic()
        print(f"[{args.database}] {name} …", flush=True)
        if name == "throughput":
            from bench import throughput

            results[name] = throughput.run(ctx, args.runs, args.jobs)
        elif name == "latency":
            from bench import latency

            results[name] = latency.run(ctx, args.runs)
        elif name == "priority":
            from bench import priority

            results[name] = priority.run(ctx, args.runs)
        elif name == "delayed":
            from bench import delayed

            results[name] = delayed.run(ctx, args.delayed_jobs)
        results[name]["wall_s"] = round(time.monotonic() - started, 1)
        # What ran in this (enqueuing) process; its workers read the same JOB_FASTPATH.
        results[name]["fastpaths"] = fastpath.status(service_app.app)
        ctx.results = results
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # partial results survive a crash


if __name__ == "__main__":
    sys.exit(main())
