"""Drain N no-op jobs through the service and through plain Celery; print both rates.

    .venv/bin/python bench/drain.py [--jobs 20000] [--runs 1] [--json out.json] [--concurrency 2]

One private Redis-compatible server and one fresh SQLite database (in a
temporary directory) serve the whole run. For each run and each system the
jobs are enqueued with no worker running, then one worker is started and the
drain rate is N / (time from the counter first becoming > 0 to it reaching N),
the counter being a Redis key every no-op job INCRs. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from intelgraph.bundled_redis import BundledRedis  # noqa: E402  (no Django import)

SYSTEMS = ("service", "plain")
BATCH = 1000
POLL_S = 0.01
NORMAL_BROKER_PRIORITY = 2  # tasks.routing.broker_priority(JobPriority.NORMAL, "redis://")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=20000, help="jobs per system per run (default 20000)"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs; the median is reported (default 1)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--stall",
        type=float,
        default=60.0,
        help="give up when the counter does not move for this many seconds (default 60)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, database)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the workers and this process, e.g. "
        "DJANGO_DEBUG=false (diagnostics; repeatable)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="diagnostics: cProfile every worker pool process into DIR (slows the drain)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        metavar="SECONDS",
        help="diagnostics: add ?conn_max_age=SECONDS to DATABASE_URL "
        "(the service ships without it: one SQLite connection per job)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1 or args.concurrency < 1:
        parser.error("--jobs, --runs and --concurrency must be positive")
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env wants KEY=VALUE, not {item!r}")
    return args


class Worker:
    """One ``celery worker`` subprocess in its own process group, logging to a file."""

    def __init__(self, system: str, concurrency: int, env: dict[str, str], log_path: Path) -> None:
        module, queue = {
            "service": ("bench.service_app", "analytics"),
            "plain": ("bench.plain_app", "plain"),
        }[system]
        self.args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            module,
            "worker",
            "-Q",
            queue,
            "-n",
            f"bench-{system}@%h",
            "-c",
            str(concurrency),
            "-P",
            "prefork",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "WARNING",
        ]
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child)
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL the whole group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # pool children left behind, if any
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def queue_depth(broker, queue: str) -> int:
    """Messages in a kombu Redis queue: the base list plus one list per priority step."""
    return sum(broker.llen(queue if p == 0 else f"{queue}:{p}") for p in range(5))


# -- enqueue --------------------------------------------------------------------------


def enqueue_service(jobs: int) -> None:
    from bench import service_app
    from tasks.api import add_bulk

    service_app.app.set_current()
    item = {"queue": "analytics", "name": "bench-noop", "data": {}}
    left = jobs
    while left:
        n = min(BATCH, left)
        add_bulk([item] * n)
        left -= n


def enqueue_plain(jobs: int) -> None:
    from bench import plain_app

    with plain_app.app.producer_or_acquire() as producer:
        for _ in range(jobs):
            plain_app.noop.apply_async(priority=NORMAL_BROKER_PRIORITY, producer=producer)


# -- drain ------------------------------------------------------------------------------


def drain(
    worker: Worker, counter, key: str, jobs: int, stall_s: float, timeline: list | None = None
) -> float:
    """Start the worker; seconds from the counter first > 0 to the counter reaching ``jobs``.

    ``timeline`` gets ``[seconds since first, counter]`` about once a second.
    """
    worker.start()
    first = None
    next_mark = 0.0
    last_value, last_change = 0, time.monotonic()
    while True:
        value = int(counter.get(key) or 0)
        now = time.perf_counter()
        if value > 0 and first is None:
            first = now
        if (
            first is not None
            and timeline is not None
            and (now - first >= next_mark or value >= jobs)
        ):
            timeline.append([round(now - first, 3), value])
            next_mark += 1.0
        if value >= jobs:
            return now - first
        mono = time.monotonic()
        if value != last_value:
            last_value, last_change = value, mono
        elif mono - last_change > stall_s:
            raise RuntimeError(
                f"counter stuck at {value}/{jobs} for {stall_s:.0f}s; "
                f"worker log:\n{worker.log_tail()}"
            )
        if not worker.alive():
            raise RuntimeError(
                f"worker exited ({worker.process.returncode}) at {value}/{jobs}; "
                f"worker log:\n{worker.log_tail()}"
            )
        time.sleep(POLL_S)


def verify_service(jobs: int) -> None:
    from django.db.models import Count

    from tasks.models import Job

    states = dict(
        Job.objects.filter(name="bench-noop").values_list("state").annotate(n=Count("id"))
    )
    if states != {"completed": jobs}:
        raise RuntimeError(f"expected {jobs} completed job rows, found {states}")


def reset_service_rows() -> None:
    from django.db import connections

    from tasks.models import Job

    Job.objects.filter(name="bench-noop").delete()
    connections.close_all()


def one(system: str, run: int, args, env, tmp: Path, broker, counter) -> dict:
    from bench.service_app import COUNTER_KEY

    jobs = args.jobs
    queue = "analytics" if system == "service" else "plain"
    broker.flushdb()
    counter.delete(COUNTER_KEY)
    if system == "service":
        reset_service_rows()

    started = time.perf_counter()
    (enqueue_service if system == "service" else enqueue_plain)(jobs)
    enqueue_s = time.perf_counter() - started
    depth = queue_depth(broker, queue)
    if depth != jobs:
        raise RuntimeError(f"{system}: {depth} messages in queue {queue!r} after enqueueing {jobs}")
    if system == "service":
        from django.db import connections

        connections.close_all()  # hold no SQLite connection while the worker writes

    if system == "plain":
        # No Django at all: with DJANGO_SETTINGS_MODULE set, Celery's Django fixup
        # would load Django in the plain worker and close connections around every task.
        env = {k: v for k, v in env.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    worker = Worker(system, args.concurrency, env, tmp / f"worker-{system}-{run}.log")
    timeline: list = []
    try:
        drain_s = drain(worker, counter, COUNTER_KEY, jobs, args.stall, timeline)
    finally:
        worker.stop()

    final = int(counter.get(COUNTER_KEY) or 0)
    if final != jobs:
        raise RuntimeError(f"{system}: counter at {final} after draining {jobs} jobs (duplicates?)")
    left = queue_depth(broker, queue)
    if left:
        raise RuntimeError(f"{system}: {left} messages still queued after the drain")
    if system == "service":
        verify_service(jobs)
    return {
        "enqueue_s": enqueue_s,
        "enqueue_rate": jobs / enqueue_s,
        "drain_s": drain_s,
        "drain_rate": jobs / drain_s if drain_s > 0 else float("inf"),
        "timeline": timeline,
    }


# -- report ---------------------------------------------------------------------------


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    return {
        system: {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "timeline"}
        for system, runs in results.items()
    }


def print_table(jobs: int, runs: int, summary: dict[str, dict]) -> None:
    label = f"median of {runs} runs" if runs > 1 else "1 run"
    print()
    print(f"Drain of {jobs} no-op jobs ({label})")
    header = f"{'system':<8} {'jobs':>7} {'drain s':>9} {'jobs/s':>9}   {'enqueue s':>9} {'enqueue jobs/s':>14}"
    print(header)
    print("-" * len(header))
    for system in SYSTEMS:
        s = summary[system]
        print(
            f"{system:<8} {jobs:>7} {s['drain_s']:>9.2f} {s['drain_rate']:>9.0f}   "
            f"{s['enqueue_s']:>9.2f} {s['enqueue_rate']:>14.0f}"
        )
    ratio = summary["service"]["drain_rate"] / summary["plain"]["drain_rate"]
    eratio = summary["service"]["enqueue_rate"] / summary["plain"]["enqueue_rate"]
    print(f"ratio service/plain: drain {ratio:.3f}   (enqueue {eratio:.3f})")


def code_version() -> str:
    """``git describe``-like: the commit, plus ``-dirty`` when the working tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="intelgraph-bench-"))
    server = BundledRedis(tmp / "redis", appendonly=False)
    db_path = tmp / "bench.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.dev",
        "DATABASE_URL": f"sqlite:///{db_path}"
        + (f"?conn_max_age={args.conn_max_age}" if args.conn_max_age is not None else ""),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **dict(item.split("=", 1) for item in args.env),
    }
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        env["BENCH_PROFILE_DIR"] = str(args.profile.resolve())
    try:
        server.start()
        env.update(
            REDIS_URL=server.url(1), BENCH_BROKER_URL=server.url(1), BENCH_COUNTER_URL=server.url(0)
        )
        env.pop("CELERY_BROKER_URL", None)  # would win over REDIS_URL in the service
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ.update(env)
        version = code_version()
        print(
            f"code {version}; server {server.binary} on port {server.port}; database {db_path}",
            flush=True,
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )

        import redis

        from bench import plain_app, service_app  # noqa: F401  (django.setup(), task registration)

        broker = redis.Redis.from_url(server.url(1))
        counter = redis.Redis.from_url(server.url(0))
        results: dict[str, list[dict]] = {s: [] for s in SYSTEMS}
        for run in range(1, args.runs + 1):
            for system in SYSTEMS:
                r = one(system, run, args, env, tmp, broker, counter)
                results[system].append(r)
                print(
                    f"run {run}/{args.runs} {system:<7}: enqueue {r['enqueue_s']:.2f}s "
                    f"({r['enqueue_rate']:.0f}/s), drain {r['drain_s']:.2f}s "
                    f"({r['drain_rate']:.0f}/s)",
                    flush=True,
                )

        summary = summarize(results)
        print_table(args.jobs, args.runs, summary)
        if args.json:
            payload = {
                "code": version,
                "jobs": args.jobs,
                "runs": args.runs,
                "concurrency": args.concurrency,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "server": server.binary,
                "database": "sqlite (WAL)",
                "extra_env": args.env,
                "conn_max_age": args.conn_max_age,
                "results": results,
                "median": summary,
                "ratio_drain_service_over_plain": summary["service"]["drain_rate"]
                / summary["plain"]["drain_rate"],
                "ratio_enqueue_service_over_plain": summary["service"]["enqueue_rate"]
                / summary["plain"]["enqueue_rate"],
            }
            args.json.write_text(json.dumps(payload, indent=2) + "\n")
            print(f"wrote {args.json}")
        return 0
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
