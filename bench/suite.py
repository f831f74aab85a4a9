"""The benchmark suite: this service against plain Celery, in one invocation.

    .venv/bin/python bench/suite.py                 # everything, median of 3 runs
    .venv/bin/python bench/suite.py --short         # CI: smaller sizes, 1 run
    .venv/bin/python bench/suite.py --scenarios throughput,priority --runs 1
    .venv/bin/python bench/suite.py --fastpaths     # each fast path on and off (service only)

Starts one private Redis-compatible server, then one child process
(``bench/child.py``) per database: SQLite always; PostgreSQL (scenarios 1–2
only) when ``BENCH_DATABASE_URL`` or ``TEST_DATABASE_URL`` is set, in a
database ``bench_<pid>`` created there and dropped afterwards. Prints a table
of rates and ratios, writes the figures as JSON and a PNG chart. BullMQ
(``bench/bullmq.py``) runs beside them on the same server in the first child,
for scenarios 1–3 and 5, when Node ≥ 18 and npm are there (else it is skipped,
with the reason printed and in the JSON). With
``--fastpaths``, instead: the service alone with its fast paths all on, all
off and each one off (``bench/fastpaths.py``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bullmq, chart, fastpaths, report  # noqa: E402
from bench.harness import code_version  # noqa: E402
from intelgraph.bundled_redis import BundledRedis  # noqa: E402  (no Django import)

ALL = ("throughput", "latency", "priority", "delayed")
ON_POSTGRES = ("throughput",)  # scenario 6: scenarios 1–2 on PostgreSQL too
DEFAULT_OUT = ROOT / "var" / "bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI mode: small sizes, 1 run (~2 min)")
    parser.add_argument(
        "--runs", type=int, help="runs per scenario; medians reported (default 3, --short 1)"
    )
    parser.add_argument(
        "--pg-runs",
        type=int,
        default=1,
        help="runs of scenarios 1–2 on PostgreSQL (default 1, to stay under 10 minutes)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="no-op jobs enqueued in bulk and drained (default 10000, --short 1500; the issue's figure is 20000)",
    )
    parser.add_argument(
        "--scenarios", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}"
    )
    parser.add_argument(
        "--database",
        choices=("all", "sqlite", "postgresql"),
        default="all",
        help="all = SQLite, plus PostgreSQL when BENCH_DATABASE_URL is set",
    )
    parser.add_argument(
        "--delayed-jobs",
        type=int,
        metavar="N",
        help="delayed jobs pending in scenario 4 (default 100000, --short 5000; "
        "the issue's figure is 1000000)",
    )
    parser.add_argument(
        "--fastpaths",
        nargs="?",
        const="all",
        default=None,
        metavar="NAMES",
        help="instead of the comparison with plain Celery: the service alone, on the "
        "scenarios its fast paths exist for, with them all on, all off and each one off "
        "(JOB_FASTPATH), --runs runs per variant interleaved; NAMES (comma list) turns "
        "off only those one by one; SQLite, or PostgreSQL with --database postgresql",
    )
    parser.add_argument(
        "--no-bullmq",
        action="store_true",
        help="leave BullMQ out (by default it runs when Node >= 18 and npm are on PATH)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="figures (default var/bench/last.json; --fastpaths: var/bench/fastpaths.json)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=DEFAULT_OUT / "last.png",
        help="PNG chart (default var/bench/last.png)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every process, e.g. LOG_LEVEL=WARNING (repeatable)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (worker logs, SQLite file)",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.short else 3)
    if args.json is None:
        args.json = fastpaths.default_json(DEFAULT_OUT) if args.fastpaths else DEFAULT_OUT / "last.json"
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env wants KEY=VALUE, not {item!r}")
    for name in args.scenarios.split(","):
        if name not in ALL:
            parser.error(f"unknown scenario {name!r}; one of {', '.join(ALL)}")
    return args


@contextmanager
def postgres_database(url: str):
    """A fresh database ``bench_<pid>`` on the server of ``url``; dropped on exit."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"bench_{os.getpid()}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(
    database: str,
    url: str,
    scenarios: list[str],
    args,
    env: dict,
    tmp: Path,
    runs: int,
    *,
    systems: str = "service,plain",
    tag: str = "",
) -> dict:
    out = tmp / f"results-{database}{tag}.json"
    command = [
        sys.executable, "-m", "bench.child", "--database", database, "--scenarios", ",".join(scenarios),
        "--runs", str(runs), "--tmp", str(tmp), "--out", str(out), "--systems", systems,
    ]  # fmt: skip
    if args.short:
        command.append("--short")
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    if args.delayed_jobs:
        command += ["--delayed-jobs", str(args.delayed_jobs)]
    # The service logs at INFO (a line per job): keep that cost, but in a file.
    log_path = tmp / f"child-{database}{tag}.log"
    with open(log_path, "ab") as log:
        result = subprocess.run(command, cwd=ROOT, env={**env, "DATABASE_URL": url}, stderr=log)
    figures = json.loads(out.read_text()) if out.exists() else {}
    if result.returncode:
        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(
            f"{database} scenarios failed (exit {result.returncode}); partial figures: {list(figures)}"
        )
    return figures


def bullmq_setup(args: argparse.Namespace, scenarios: list[str], env: dict) -> bullmq.Setup:
    """Node, npm and the locked BullMQ install, or why BullMQ is left out (printed)."""
    if args.no_bullmq:
        setup = bullmq.Setup(skipped="--no-bullmq")
    elif not set(scenarios) & set(bullmq.SCENARIOS):
        setup = bullmq.Setup(skipped=f"none of {', '.join(bullmq.SCENARIOS)} in this run")
    else:
        setup = bullmq.prepare(env)
    print(setup.describe(), flush=True)
    return setup


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # run the clean-up below
    scenarios = args.scenarios.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="intelgraph-bench-"))
    server = BundledRedis(tmp / "redis", appendonly=False)
    started = time.monotonic()
    pg_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.dev",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **dict(item.split("=", 1) for item in args.env),
    }
    env.pop("CELERY_BROKER_URL", None)  # would win over REDIS_URL in the service
    try:
        server.start()
        env.update(
            REDIS_URL=server.url(1), BENCH_BROKER_URL=server.url(1), BENCH_COUNTER_URL=server.url(0),
            BENCH_SERVER_DIR=str(server.data_dir),  # bench/context.py flushes only this server
        )
        version = code_version()
        print(
            f"code {version}; server {server.binary} on port {server.port}; tmp {tmp}", flush=True
        )
        if args.fastpaths:
            return run_fastpaths(args, env, tmp, pg_url, version, started)
        setup = bullmq_setup(args, scenarios, env)
        if setup.ready:
            env["BENCH_BULLMQ_URL"] = server.url(bullmq.DB)
        systems = "service,plain,bullmq" if setup.ready else "service,plain"
        results: dict = {}
        if args.database in ("all", "sqlite"):
            url = f"sqlite:///{tmp / 'bench.sqlite3'}"
            results["sqlite"] = run_child("sqlite", url, scenarios, args, env, tmp, args.runs,
                                          systems=systems)  # fmt: skip
            systems = "service,plain"  # BullMQ has no database: measured once, in the first child
        pg_scenarios = [s for s in scenarios if s in ON_POSTGRES or args.database == "postgresql"]
        if args.database in ("all", "postgresql") and pg_scenarios:
            if not pg_url:
                print(
                    "PostgreSQL skipped: set BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
                )
            else:
                with postgres_database(pg_url) as url:
                    results["postgresql"] = run_child(
                        "postgresql", url, pg_scenarios, args, env, tmp, args.pg_runs,
                        systems=systems,
                    )
        payload = {
            "code": version,
            "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "short": args.short,
            "runs": args.runs,
            "pg_runs": args.pg_runs,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "server": Path(server.binary).name,
            "extra_env": args.env,
            "bullmq": asdict(setup),
            "wall_s": round(time.monotonic() - started, 1),
            "results": results,
        }
        print()
        print(report.table(payload))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
        if chart.chart(payload, args.chart):
            print(f"wrote {args.chart}")
        return 0
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_fastpaths(args, env: dict, tmp: Path, pg_url: str | None, version: str,
                  started: float) -> int:
    """``--fastpaths``: every variant ``--runs`` times, interleaved; the table and JSON."""
    database = "postgresql" if args.database == "postgresql" else "sqlite"
    if database == "postgresql" and not pg_url:
        raise SystemExit("--fastpaths --database postgresql needs BENCH_DATABASE_URL")

    def measure(url: str) -> dict:
        def one(label: str, scenarios: list[str], extra: dict, tag: str) -> dict:
            slug = "-" + label.replace(" ", "-") + "-" + tag
            return run_child(database, url, scenarios, args, {**env, **extra}, tmp, 1,
                             systems="service", tag=slug)  # fmt: skip

        return fastpaths.run(one, args.runs, fastpaths.chosen(args.fastpaths))

    if database == "postgresql":
        with postgres_database(pg_url) as url:
            figures = measure(url)
    else:
        figures = measure(f"sqlite:///{tmp / 'bench.sqlite3'}")
    payload = {
        "code": version,
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(["bench/suite.py", *sys.argv[1:]]),
        "database": database,
        "short": args.short,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "extra_env": args.env,
        "wall_s": round(time.monotonic() - started, 1),
        "fastpaths": figures,
    }
    print()
    print(fastpaths.table(payload))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
