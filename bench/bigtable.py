"""The job table at 10 million rows (issue 15, item 4): pages, enqueue, drain, promotion, retention.

    make bench-bigtable                                        # 10,000,000 rows, SQLite (+ PostgreSQL)
    .venv/bin/python bench/bigtable.py --rows 200000           # a quick look
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/bigtable.py

For each database (a fresh SQLite file; a fresh PostgreSQL database
``bench_big_<pid>`` when ``BENCH_DATABASE_URL`` is set, dropped afterwards),
one child process, on the benchmark's private Redis-compatible server:

1. **empty table**: ``add_job`` one at a time, ``add_bulk``, and the drain
   of no-op jobs by one prefork worker (concurrency 2): the scenario-1/2
   code of ``bench/throughput.py``; the dashboard pages, timed;
2. **fill** to ``--rows`` jobs spread over 7 days: 88 % completed, 5 %
   failed (with a traceback), 1 % cancelled, 5 % delayed (due in 1 h–7 d),
   1 % waiting (on queues no bench worker consumes), four queues, real job
   names; counters folded up to the fill (``CounterWatermark``), as a
   running promoter would have left them;
3. **full table**, while a worker drains 20,000 no-op jobs: each page
   fetched three times (warm = the median of the last two) through
   Django's test client with a superuser: overview, ``counts.json``, a
   listing page, a search, a job page, ``/metrics``; then enqueue and drain
   again (ratio to the empty table, target ≥ 0.9×); promotion lateness of
   2,000 jobs falling due at 200/s with the promoter running (p99 ≤ 1 s);
4. **retention** of 1,000,000 expired completed rows (``Queue.clean`` with a
   limit: the batched delete retention uses), in a fresh process: time and
   peak RSS growth; the database's size before and after.

The promoter runs with retention and the lost-message reconciler far apart
(``JOB_RETENTION_EVERY``, ``JOB_STUCK_AFTER``): the 8 million completed rows
older than the default 24 h would otherwise be its first minute's work, and
step 4 measures retention on its own. Targets are printed; nothing fails on
a missed one. Figures: ``var/bench/bigtable.json``; docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
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

DAY_S = 86_400
PAGE_TARGET_S = 1.0
RATIO_TARGET = 0.9
LATENESS_TARGET_S = 1.0
DRAIN_DURING_PAGES = 20_000
DUE_JOBS, DUE_RATE = 2_000, 200.0
NAMES = {
    "email": ("send-welcome-email", "send-password-reset-email"),
    "notifications": ("notify-user", "send-reminder"),
    "data-processing": ("process-data",),
    "analytics": ("hourly-stats", "weekly-report"),
}
COLUMNS = ("id", "queue", "name", "data", "priority", "state", "attempts_made", "max_attempts",
           "backoff", "delay_ms", "run_at", "progress", "result", "errors", "worker",
           "cancel_requested", "lost_count", "created_at", "enqueued_at", "published_at",
           "started_at", "finished_at")
TRACEBACK = json.dumps([{"attempt": 3, "error": "SMTPException: 451 try later",
                         "traceback": "Traceback (most recent call last):\n" + "  ...\n" * 12}])


# --- the fill ----------------------------------------------------------------------------

def _rows(start: int, count: int, now: float, rng: random.Random):
    """``count`` job rows as tuples of ``COLUMNS`` (datetimes as aware ``datetime``)."""
    from datetime import UTC, datetime

    from tasks.jobs.ids import new_job_id

    def at(epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, UTC)

    queues = list(NAMES)
    for n in range(start, start + count):
        pick = rng.random()
        queue = queues[n % 4]
        created = now - rng.uniform(60, 7 * DAY_S)
        run_at = enqueued = published = started = finished = None
        result, errors, attempts = None, "[]", 1
        if pick < 0.88:
            state, result = "completed", '{"ok": true}'
        elif pick < 0.93:
            state, errors, attempts = "failed", TRACEBACK, 3
        elif pick < 0.94:
            state, attempts = "cancelled", 0
        elif pick < 0.99:
            state, attempts = "delayed", 0
            run_at = at(now + rng.uniform(3600, 7 * DAY_S))
        else:
            state, attempts, queue = "waiting", 0, queues[n % 2]  # email, notifications
            enqueued = published = at(now - rng.uniform(1, 30))
        if state in ("completed", "failed"):
            begun = created + rng.uniform(0.001, 2.0)
            started, finished = at(begun), at(min(begun + rng.uniform(0.01, 1.5), now - 31))
            enqueued = published = at(created)
        elif state == "cancelled":
            finished = at(created + rng.uniform(1, 600))
        name = NAMES[queue][n % len(NAMES[queue])]
        yield (new_job_id(), queue, name, f'{{"userId": "u{n % 50_000}", "dataId": {n}}}',
               3, state, attempts, 3, "{}", 0, run_at, "100" if state == "completed" else "0",
               result, errors, "w1@host" if started else "", False, 0, at(created),
               enqueued, published, started, finished)


def fill(rows: int, seed: int = 15) -> dict:
    """Insert ``rows`` jobs (executemany on SQLite, COPY on PostgreSQL); fold the counters."""
    from datetime import UTC, datetime

    from django.db import connection, transaction

    from tasks.models import CounterWatermark, Job
    from tasks.upkeep import counters

    rng = random.Random(seed)
    now = time.time()
    table = connection.ops.quote_name(Job._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    started = time.monotonic()
    chunk = 50_000
    for start in range(0, rows, chunk):
        batch = list(_rows(start, min(chunk, rows - start), now, rng))
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(COLUMNS))
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
        if (start // chunk) % 20 == 19:
            print(f"    filled {start + chunk:,} rows in {time.monotonic() - started:.0f} s",
                  flush=True)
    fill_s = time.monotonic() - started
    # As a running promoter would have left them: every finished row folded into the
    # counters (so the first fold does not read 9 million rows), the watermark at the fill.
    fold_started = time.monotonic()
    CounterWatermark.objects.update_or_create(
        pk=1, defaults={"folded_until": datetime.fromtimestamp(now - 7 * DAY_S - 60, UTC)})
    counters.fold(datetime.fromtimestamp(now, UTC))
    counters.roll_up(datetime.fromtimestamp(now, UTC))  # minutes older than a day -> hours
    fold_s = time.monotonic() - fold_started
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")  # plans for the table as it is now
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"rows": rows, "fill_s": fill_s, "fill_rate": rows / fill_s, "fold_s": fold_s}


# --- measurements -------------------------------------------------------------------------

def database_bytes() -> int:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    name = Path(connection.settings_dict["NAME"])
    return sum(p.stat().st_size for p in name.parent.glob(name.name + "*"))


def pages() -> dict[str, float]:
    """Warm seconds per page: each fetched three times, the median of the last two."""
    from django.contrib.auth.models import User
    from django.test import Client

    from tasks.models import Job

    user, _ = User.objects.get_or_create(username="bench-admin",
                                         defaults={"is_staff": True, "is_superuser": True})
    client = Client(HTTP_HOST="127.0.0.1")  # an allowed host of settings.dev
    client.force_login(user)
    job_id = (Job.objects.filter(queue="data-processing", state="failed")
              .values_list("id", flat=True).first())
    if job_id is None:  # the empty table: one failed job to show
        from django.utils import timezone

        job_id = Job.objects.create(id="bench-page-job", queue="data-processing",
                                    name="process-data", state="failed",
                                    created_at=timezone.now(), finished_at=timezone.now(),
                                    errors=json.loads(TRACEBACK)).pk
    urls = {
        "overview": "/queues/",
        "counts": "/queues/counts.json",
        "listing": "/queues/data-processing/completed/",
        "search": "/queues/data-processing/?q=u4242",
        "job page": f"/queues/jobs/{job_id}",
        "metrics": "/metrics",
    }
    out = {}
    for label, url in urls.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")
        out[label] = statistics.median(times[1:])
    return out


def throughput(ctx, runs: int) -> dict:
    """Medians of ``runs`` runs: the two phases cannot alternate (the fill is between them)."""
    results = [_throughput_once(ctx) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]} | {
        "runs": results}


def _throughput_once(ctx) -> dict:
    from bench import throughput as scenario

    n = scenario.sizes(ctx.short)
    n["sleep"] = 0
    side = ctx.side("service")
    out: dict = {}
    ctx.reset()
    out["enqueue_one_rate"] = n["one"] / _timed(lambda: [side.one("noop", {})
                                                         for _ in range(n["one"])])
    ctx.reset()
    out["enqueue_bulk_rate"] = n["bulk"] / _timed(side.bulk, "noop", [{}] * n["bulk"])
    side.close()
    out["drain_rate"] = scenario._drain(ctx, "service", n["bulk"], "drain", "prefork", 2)["rate"]
    ctx.reset()
    return out


def _timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def pages_while_draining(ctx) -> dict[str, float]:
    ctx.reset()
    side = ctx.side("service")
    side.bulk("noop", [{}] * DRAIN_DURING_PAGES)
    side.close()
    with ctx.worker("service", "pages"):
        time.sleep(2.0)
        return pages()


def lateness(ctx) -> dict:
    from bench import delayed
    from bench.harness import percentile
    from tasks.models import Job

    ctx.reset()
    side = ctx.side("service")
    promoter = delayed._start_promoter(ctx)
    try:
        with ctx.worker("service", "due"):
            time.sleep(3.0)
            first = time.time() + 5.0
            due = [first + i / DUE_RATE for i in range(DUE_JOBS)]
            delayed._enqueue_due(due, "bench-probe", lambda t: {"t0": t, "kind": "due"})
            side.close()
            ids = list(Job.objects.filter(name="bench-probe").values_list("id", flat=True))
            deadline = time.time() + (due[-1] - time.time()) + 120
            while time.time() < deadline:
                time.sleep(1.0)
                rows = [r for start in range(0, len(ids), 500) for r in Job.objects.filter(
                    pk__in=ids[start:start + 500]).values_list("run_at", "published_at")]
                late = [(pub - run_at).total_seconds() for run_at, pub in rows if pub]
                if len(late) == len(ids):
                    break
            else:
                raise RuntimeError(f"promoted {len(late)} of {len(ids)} within the deadline")
            if min(run_at.timestamp() for run_at, _ in rows) < first - 0.05:
                raise RuntimeError("a probe fell due before its time: delays not honoured")
            if promoter.poll() is not None:
                raise RuntimeError("the promoter exited")
    finally:
        delayed._stop(promoter)
    ctx.reset()
    return {"lateness_p50_s": percentile(late, 50), "lateness_p99_s": percentile(late, 99),
            "lateness_max_s": max(late)}


def retention_run(limit: int) -> dict:
    """In a fresh process: clean ``limit`` expired completed rows (batched, as retention does)."""
    from datetime import timedelta

    from tasks.models import Job
    from tasks.queues import queue_registry

    Job.objects.exists()
    with open("/proc/self/statm") as statm:
        before_mb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    started = time.monotonic()
    deleted = 0
    for queue in ("data-processing", "analytics", "email", "notifications"):
        left = limit - deleted
        if left <= 0:
            break
        deleted += queue_registry.get_queue(queue).clean(timedelta(hours=24), "completed", left)
    seconds = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"deleted": deleted, "seconds": seconds, "rate": deleted / seconds,
            "rss_growth_mb": max(peak_mb - before_mb, 0.0)}


# --- the child (one database) and the driver -----------------------------------------------

def child(database: str, rows: int, out: Path, tmp: Path, short: bool, runs: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    django.setup()
    import redis
    from django.core.management import call_command

    from bench import service_app  # noqa: F401  (the bench processors)
    from bench.context import Context

    call_command("migrate", verbosity=0)
    ctx = Context(env=dict(os.environ), tmp=tmp, database=database, short=short,
                  broker=redis.Redis.from_url(os.environ["BENCH_BROKER_URL"]),
                  counter=redis.Redis.from_url(os.environ["BENCH_COUNTER_URL"]))
    result: dict = {}

    def save(key: str, value) -> None:
        result[key] = value
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"  [{database}] {key}: {json.dumps(value, default=str)}", flush=True)

    save("empty_throughput", throughput(ctx, runs))
    save("empty_pages", pages())
    save("fill", fill(rows))
    save("size_bytes", database_bytes())
    save("full_pages", pages_while_draining(ctx))
    save("full_throughput", throughput(ctx, runs))
    save("lateness", lateness(ctx))


def _run_child(args: list[str], env: dict, log: Path) -> None:
    with open(log, "ab") as handle:
        done = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, env=env,
                              stdout=None, stderr=handle)
    if done.returncode:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(f"{args[:2]} failed (exit {done.returncode})")


def _retention(env: dict, limit: int, tmp: Path) -> dict:
    out = tmp / "retention.json"
    _run_child(["--_retention", str(limit), "--out", str(out)], env, tmp / "retention.log")
    return json.loads(out.read_text())


def _database_bytes_child(env: dict, tmp: Path) -> int:
    out = tmp / "size.json"
    _run_child(["--_size", "--out", str(out)], env, tmp / "size.log")
    return json.loads(out.read_text())


def report(name: str, figures: dict) -> str:
    lines = [f"{name}: {figures['fill']['rows']:,} rows (filled in "
             f"{figures['fill']['fill_s']:.0f} s, {figures['fill']['fill_rate']:,.0f}/s; "
             f"counters folded in {figures['fill']['fold_s']:.0f} s), database "
             f"{figures['size_bytes'] / 2**30:.2f} GiB"]
    lines.append(f"  {'page (warm, while a worker drains)':38} {'empty':>9} {'full':>9}  target")
    for page, seconds in figures["full_pages"].items():
        met = "met" if seconds <= PAGE_TARGET_S else "NOT MET"
        lines.append(f"  {page:38} {figures['empty_pages'][page] * 1000:7.0f}ms "
                     f"{seconds * 1000:7.0f}ms  <= 1 s {met}")
    for key, label in (("enqueue_one_rate", "add_job one at a time"),
                       ("enqueue_bulk_rate", "add_bulk"), ("drain_rate", "drain no-op, c2")):
        empty, full = figures["empty_throughput"][key], figures["full_throughput"][key]
        ratio = full / empty
        met = "met" if ratio >= RATIO_TARGET else "NOT MET"
        lines.append(f"  {label:38} {empty:7,.0f}/s {full:7,.0f}/s  {ratio:.2f}x (>= 0.9x {met})")
    late = figures["lateness"]
    met = "met" if late["lateness_p99_s"] <= LATENESS_TARGET_S else "NOT MET"
    lines.append(f"  promotion lateness p50 / p99 / max       {late['lateness_p50_s']:.3f} / "
                 f"{late['lateness_p99_s']:.3f} / {late['lateness_max_s']:.3f} s (p99 <= 1 s {met})")
    if "retention" in figures:
        r = figures["retention"]
        lines.append(f"  retention of {r['deleted']:,} expired rows: {r['seconds']:.1f} s "
                     f"({r['rate']:,.0f}/s), peak RSS +{r['rss_growth_mb']:.0f} MB; database "
                     f"{figures['size_bytes'] / 2**30:.2f} -> "
                     f"{figures['size_after_retention'] / 2**30:.2f} GiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--retention", type=int, default=1_000_000,
                        help="expired rows to delete in step 4")
    parser.add_argument("--database", choices=("all", "sqlite", "postgresql"), default="all")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "bigtable.json")
    parser.add_argument("--short", action="store_true", help="smaller enqueue/drain sizes")
    parser.add_argument("--runs", type=int, default=3, help="enqueue/drain runs per phase")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_retention", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_size", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        child(args._child, args.rows, args.out, args.tmp, args.short, args.runs)
        return 0
    if args._retention is not None or args._size:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
        django.setup()
        value = database_bytes() if args._size else retention_run(args._retention)
        args.out.write_text(json.dumps(value))
        return 0

    from bench.suite import postgres_database
    from intelgraph.bundled_redis import BundledRedis

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    (ROOT / "var").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="intelgraph-bigtable-", dir=ROOT / "var"))
    server = BundledRedis(tmp / "redis", appendonly=False)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.dev", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT), "JOB_RETENTION_EVERY": "1000000000",
           "JOB_STUCK_AFTER": "1000000000"}
    env.pop("CELERY_BROKER_URL", None)
    results: dict = {}
    try:
        server.start()
        env.update(REDIS_URL=server.url(1), BENCH_BROKER_URL=server.url(1),
                   BENCH_COUNTER_URL=server.url(0), BENCH_SERVER_DIR=str(server.data_dir))
        pg_url = os.environ.get("BENCH_DATABASE_URL")
        targets = []
        if args.database in ("all", "sqlite"):
            targets.append(("sqlite", None))
        if args.database in ("all", "postgresql"):
            if pg_url:
                targets.append(("postgresql", pg_url))
            else:
                print("PostgreSQL skipped: set BENCH_DATABASE_URL")
        for name, url in targets:
            print(f"[{name}] {args.rows:,} rows", flush=True)
            if url is None:
                with_db = _sqlite(tmp)
            else:
                with_db = postgres_database(url)
            with with_db as db_url:
                db_env = {**env, "DATABASE_URL": db_url}
                out = tmp / f"{name}.json"
                child_args = ["--_child", name, "--rows", str(args.rows), "--out", str(out),
                              "--tmp", str(tmp), "--runs", str(args.runs)]
                child_args += ["--short"] if args.short else []
                _run_child(child_args, db_env, tmp / f"{name}.log")
                figures = json.loads(out.read_text())
                figures["retention"] = _retention(db_env, args.retention, tmp)
                figures["size_after_retention"] = _database_bytes_child(db_env, tmp)
                results[name] = figures
                print(report(name, figures), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": args.rows, "when": time.strftime("%F %T %z"),
                                         "cpus": os.cpu_count(), "results": results},
                                        indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
        return 0
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


class _sqlite:
    """A fresh SQLite file in ``tmp`` (a context manager like ``postgres_database``)."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "big.sqlite3"

    def __enter__(self) -> str:
        return f"sqlite:///{self.path}"

    def __exit__(self, *exc: object) -> None:
        for path in self.path.parent.glob(self.path.name + "*"):
            path.unlink()


if __name__ == "__main__":
    raise SystemExit(main())
