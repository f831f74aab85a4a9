"""Retention over a large backlog: time and memory of deleting finished jobs (issue 13, item 7).

    .venv/bin/python bench/retention.py                   # 300,000 jobs (+ a log line each)
    .venv/bin/python bench/retention.py --rows 50000 --baseline
    make bench-retention                                  # the default run

A fresh SQLite file (WAL, as ``settings/environment.py`` configures it) in a
temporary directory gets ``--rows`` completed jobs of queue ``email`` finished
two days ago (past the 24 h retention) with ``--log-lines`` log lines each,
plus jobs that must survive (recent completed, recent failed, waiting, and
their log lines). Then, in a fresh process per measurement (its peak RSS is
its own), the promoter's per-minute path runs, ``enforce_retention()``, which
is also what ``clean`` from the dashboard and ``manage.py queues clean`` do:
wall time, and peak RSS growth over the process's RSS just before the call
(``ru_maxrss``). Targets (issue 13): < 5 s and < 100 MB for 300,000 rows.

``--baseline`` measures, on a copy of the same file, how retention deleted
before: ``QuerySet.delete()``, whose cascade to ``JobLog`` loads every job
as a model instance (26.5 s and 750 MB for 300,000 rows in the issue).

Caveats: one run (add ``--runs``); the machine's other load moves the time;
``settings.dev`` (DEBUG on, as ``make run``'s promoter) is what runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 5.0
TARGET_MB = 100.0
SURVIVORS = 1_000  # of each kind that retention must keep


def _django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    import django

    django.setup()


def setup(rows: int, log_lines: int) -> dict:
    """Migrate a fresh database and fill it; returns what it inserted."""
    _django()
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from tasks.jobs.ids import new_job_id
    from tasks.models import Job, JobLog

    call_command("migrate", verbosity=0)
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    old, recent = adapt(now - timedelta(days=2)), adapt(now - timedelta(minutes=5))
    table, logs = Job._meta.db_table, JobLog._meta.db_table
    insert = (f"INSERT INTO {table} (id, queue, name, data, priority, state, attempts_made, "
              "max_attempts, backoff, delay_ms, progress, result, errors, worker, "
              "cancel_requested, lost_count, created_at, finished_at) VALUES "
              "(%s, %s, 'send-welcome-email', %s, 3, %s, 1, 3, '{}', 0, '100', %s, %s, "
              "'w@host', 0, 0, %s, %s)")
    insert_log = f"INSERT INTO {logs} (job_id, created_at, message) VALUES (%s, %s, %s)"
    data = json.dumps({"to": "someone@example.com", "subject": "Welcome", "body": "x" * 200})
    error = json.dumps([{"attempt": 1, "error": "SMTPException: 451", "traceback": "t" * 1500}])

    def chunked(kind: str, n: int, state: str, finished) -> None:
        for start in range(0, n, 10_000):
            batch = [new_job_id() for _ in range(min(10_000, n - start))]
            result = '{"sent": true}' if state == "completed" else None
            errors = error if state == "failed" else "[]"
            with transaction.atomic(), connection.cursor() as cursor:
                created = finished or recent
                cursor.executemany(insert, [(i, "email", data, state, result, errors, created,
                                             finished) for i in batch])
                cursor.executemany(insert_log, [(i, created, f"{kind} line {k}") for i in batch
                                                for k in range(log_lines)])

    started = time.monotonic()
    chunked("doomed", rows, "completed", old)
    chunked("kept", SURVIVORS, "completed", recent)
    chunked("kept", SURVIVORS, "failed", recent)
    chunked("kept", SURVIVORS, "waiting", None)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"rows": rows, "log_lines": rows * log_lines, "fill_s": time.monotonic() - started}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(mode: str) -> dict:
    """Run retention once in this (fresh) process; time, peak RSS growth, and a check."""
    _django()
    from datetime import timedelta

    from django.utils import timezone

    from tasks.models import Job, JobLog
    from tasks.upkeep.retention import enforce_retention

    Job.objects.exists()  # connect, load what the first query loads, before the baseline
    before_mb = _rss_mb()
    started = time.monotonic()
    if mode == "service":
        deleted = sum(enforce_retention().values())
    else:  # how retention deleted before this change: the ORM's cascade
        cutoff = timezone.now() - timedelta(hours=24)
        deleted = Job.objects.filter(queue="email", state="completed",
                                     finished_at__lt=cutoff).delete()[1].get("tasks.Job", 0)
    elapsed = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    left = {state: Job.objects.filter(state=state).count()
            for state in ("completed", "failed", "waiting")}
    return {"mode": mode, "deleted": deleted, "seconds": elapsed,
            "rss_growth_mb": max(peak_mb - before_mb, 0.0), "rss_before_mb": before_mb,
            "left": left, "log_lines_left": JobLog.objects.count()}


def _child(args: list[str], database: Path) -> dict:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}",
           "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "settings.dev"),
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, *args], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="jobs past retention")
    parser.add_argument("--log-lines", type=int, default=1, help="log lines per job")
    parser.add_argument("--runs", type=int, default=1, help="measurements (each on a fresh copy)")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure QuerySet.delete() (the old path; slow, memory-hungry)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--_setup", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_measure", choices=("service", "orm"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._setup:
        print(json.dumps(setup(*args._setup)))
        return 0
    if args._measure:
        print(json.dumps(measure(args._measure)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="intelgraph-bench-retention-"))
    try:
        source = tmp / "filled.sqlite3"
        filled = _child(["--_setup", str(args.rows), str(args.log_lines)], source)
        print(f"filled {filled['rows']:,} jobs + {filled['log_lines']:,} log lines past "
              f"retention, {3 * SURVIVORS:,} jobs to keep, in {filled['fill_s']:.1f} s")
        results = []
        modes = ["service"] + (["orm"] if args.baseline else [])
        for run in range(args.runs):
            for mode in modes:
                copy = tmp / f"{mode}-{run}.sqlite3"
                shutil.copy(source, copy)
                result = _child(["--_measure", mode], copy)
                copy.unlink()
                expected = {"completed": SURVIVORS, "failed": SURVIVORS, "waiting": SURVIVORS}
                result["correct"] = (result["deleted"] == args.rows and result["left"] == expected
                                     and result["log_lines_left"] == 3 * SURVIVORS
                                     * args.log_lines)
                results.append(result)
                label = "enforce_retention (batched)" if mode == "service" else \
                    "QuerySet.delete() (before)"
                time_ok = "met" if result["seconds"] < TARGET_S else "NOT MET"
                mem_ok = "met" if result["rss_growth_mb"] < TARGET_MB else "NOT MET"
                rate = result["deleted"] / result["seconds"] if result["seconds"] else 0
                note = "" if mode == "orm" else \
                    f"  [< {TARGET_S:.0f} s: {time_ok}; < {TARGET_MB:.0f} MB: {mem_ok}]"
                print(f"{label:30} deleted {result['deleted']:>9,} in {result['seconds']:6.2f} s "
                      f"({rate:,.0f}/s), peak RSS +{result['rss_growth_mb']:6.1f} MB"
                      f"{note}; survivors and their logs intact: {result['correct']}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"rows": args.rows, "log_lines": args.log_lines,
                                             "results": results}, indent=2))
        return 0 if all(r["correct"] for r in results) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
