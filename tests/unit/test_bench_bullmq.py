"""BullMQ in the benchmark suite: the pure parts of ``bench/bullmq.py``, the table's
BullMQ column and ratios, ``bench/ab.py`` with a third system, and the skip paths
(Node or npm missing, Node too old, the install failing), with stand-in ``node`` and
``npm`` scripts on a PATH of their own. The Node script itself runs in
``tests/integration/test_bench_bullmq.py``."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from bench import ab, bullmq, report
from bench.instrument import keys


def _payload(*, with_bullmq: bool = True) -> dict:
    """A suite JSON as ``bench/suite.py --short`` writes it (only the figures read here)."""
    median = {
        "service": {"enqueue_one_rate": 900.0, "enqueue_bulk_rate": 21000.0, "drain_rate": 600.0,
                    "drain_worker_cpu_us_per_job": 2500.0, "drain_redis_cpu_us_per_job": 150.0,
                    "sleep_rate": 500.0},
        "plain": {"enqueue_one_rate": 1800.0, "enqueue_bulk_rate": 9000.0, "drain_rate": 1200.0,
                  "drain_worker_cpu_us_per_job": 1500.0, "drain_redis_cpu_us_per_job": 100.0,
                  "sleep_rate": 700.0},
    }  # fmt: skip
    latency = {s: {"idle_started_p50_ms": 2.0, "idle_started_p99_ms": 4.0,
                   "idle_finished_p50_ms": 5.0, "idle_finished_p99_ms": 8.0,
                   "load_started_p50_ms": 3.0, "load_started_p99_ms": 9.0,
                   "load_finished_p50_ms": 6.0, "load_finished_p99_ms": 12.0,
                   "load_offered_rate": 300.0} for s in ("service", "plain")}  # fmt: skip
    priority = {s: {"background_before_last_critical": 2, "critical_done_s": 0.4,
                    "critical_enqueue_s": 0.05} for s in ("service", "plain")}  # fmt: skip
    if with_bullmq:
        median["bullmq"] = {"enqueue_one_rate": 3000.0, "enqueue_bulk_rate": 40000.0,
                            "drain_rate": 6000.0, "drain_concurrency": 50,
                            "drain_c1_rate": 2000.0, "drain_c10_rate": 5000.0,
                            "drain_c50_rate": 6000.0, "drain_worker_cpu_us_per_job": 120.0,
                            "drain_redis_cpu_us_per_job": 60.0}  # fmt: skip
        latency["bullmq"] = {"idle_started_p50_ms": 1.0, "idle_started_p99_ms": 2.0,
                             "idle_finished_p50_ms": 1.5, "idle_finished_p99_ms": 3.0}
        priority["bullmq"] = {"background_before_last_critical": 1, "critical_done_s": 0.1,
                              "critical_enqueue_s": 0.01}  # fmt: skip
    sizes = {"one": 200, "bulk": 1500, "sleep": 400}
    return {
        "code": "abc1234", "when": "2026-12-05 17:00:00 +0000", "short": True, "runs": 1,
        "pg_runs": 1, "cpus": 2, "wall_s": 90.0, "extra_env": [],
        "bullmq": {"node": "v20.20.2", "bullmq": "6.7.6", "skipped": None} if with_bullmq
        else {"node": None, "bullmq": None, "skipped": "node is not on PATH"},
        "results": {
            "sqlite": {
                "throughput": {"sizes": sizes, "median": median},
                "latency": {"median": latency},
                "priority": {"backlog": 1000, "urgent": 100,
                             "one": {"median": priority}, "bulk": {"median": priority}},
            },
            "postgresql": {"throughput": {"sizes": sizes, "median": {
                k: v for k, v in median.items() if k != "bullmq"}}},
        },
    }  # fmt: skip


def _row(payload: dict, label: str, db: str = "sqlite") -> dict:
    for row in report.rows(payload):
        if row[0].startswith(label) and row[1] == db:
            return dict(zip(report.HEADER, row, strict=True))
    raise AssertionError(f"no row {label!r} for {db}")


# --- arguments and the JSON line -------------------------------------------------------


def test_the_command_names_the_scenario_the_server_and_each_option():
    command = bullmq.command("enqueue-bulk", "redis://127.0.0.1:7001/2", jobs=20,
                             name="probe", data={"t0": 0.0, "kind": "b"}, priority=5,
                             batch=None)  # fmt: skip
    assert command[:3] == ["node", str(bullmq.SCRIPT), "enqueue-bulk"]
    assert command[3:] == ["--redis", "redis://127.0.0.1:7001/2", "--jobs", "20",
                           "--name", "probe", "--data", '{"t0": 0.0, "kind": "b"}',
                           "--priority", "5"]  # fmt: skip


def test_the_worker_gets_the_counter_database_and_its_concurrency(tmp_path: Path):
    env = {"BENCH_BULLMQ_URL": "redis://127.0.0.1:7001/2",
           "BENCH_COUNTER_URL": "redis://127.0.0.1:7001/0"}  # fmt: skip
    worker = bullmq.NodeWorker(env, tmp_path / "w.log", concurrency=50)
    assert worker.args[2:] == ["worker", "--redis", "redis://127.0.0.1:7001/2",
                               "--counter", "redis://127.0.0.1:7001/0", "--concurrency", "50"]
    assert not worker.alive()


def test_bullmq_gets_a_database_of_its_own_on_the_same_server():
    assert bullmq.url_for("redis://127.0.0.1:7001/1") == "redis://127.0.0.1:7001/2"
    assert bullmq.DB not in (0, 1)  # the counters and the Celery broker


def test_the_figures_are_the_last_line_of_json():
    out = "some warning\n" + json.dumps({"jobs": 20, "seconds": 0.01, "rate": 2000.0}) + "\n\n"
    assert bullmq.parse_line(out) == {"jobs": 20, "seconds": 0.01, "rate": 2000.0}


@pytest.mark.parametrize(("out", "message"), [
    ("", "printed nothing"),
    ("Error: boom\n", "not JSON"),
    ("[1, 2]\n", "not a JSON object"),
    ('{"error": "Error: unknown scenario x"}\n', "unknown scenario x"),
])  # fmt: skip
def test_a_bad_or_failed_line_raises_with_what_was_printed(out: str, message: str):
    with pytest.raises(ValueError, match=message):
        bullmq.parse_line(out)


def test_node_versions():
    assert bullmq.node_major("v20.20.2\n") == 20
    assert bullmq.node_major("18.0.0") == 18
    with pytest.raises(ValueError, match="not a Node version"):
        bullmq.node_major("command not found")


def test_the_node_script_writes_the_keys_the_driver_reads():
    script = bullmq.SCRIPT.read_text()
    for name in ("COUNTER_KEY", "STARTED_KEY", "FINISHED_KEY"):
        assert re.search(rf"const {name} = '{re.escape(getattr(keys, name))}';", script), name


def test_the_versions_are_pinned_exactly_and_locked():
    package = json.loads((bullmq.DIR / "package.json").read_text())
    lock = json.loads(bullmq.LOCK.read_text())
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version} is a range"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert package["engines"]["node"] == f">={bullmq.MIN_NODE}"


# --- the skip paths, with stand-in node and npm -----------------------------------------


def _tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_install(tmp_path: Path, monkeypatch):
    """A bin folder for stand-ins and a package folder of its own (the real one untouched)."""
    package = tmp_path / "package"
    (package / "node_modules").mkdir(parents=True)
    (package / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    monkeypatch.setattr(bullmq, "DIR", package)
    monkeypatch.setattr(bullmq, "LOCK", package / "package-lock.json")
    monkeypatch.setattr(bullmq, "STAMP", package / "node_modules" / ".stamp")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return bin_dir


NODE_20 = (
    'if [ "$1" = "--version" ]; then echo v20.1.0; exit 0; fi\n'
    """echo '{"node": "v20.1.0", "bullmq": "6.7.6"}'\n"""
)


def test_without_node_on_path_bullmq_is_skipped_with_the_reason(fake_install: Path):
    setup = bullmq.prepare({"PATH": str(fake_install)})
    assert not setup.ready
    assert "node is not on PATH" in setup.skipped
    assert setup.describe().startswith("BullMQ skipped: node is not on PATH")


def test_without_npm_bullmq_is_skipped(fake_install: Path):
    _tool(fake_install, "node", NODE_20)
    assert "npm is not on PATH" in bullmq.prepare({"PATH": str(fake_install)}).skipped


def test_a_node_older_than_18_is_refused(fake_install: Path):
    _tool(fake_install, "node", "echo v16.20.0\n")
    _tool(fake_install, "npm", "exit 0\n")
    setup = bullmq.prepare({"PATH": str(fake_install)})
    assert setup.node == "v16.20.0"
    assert "older than 18" in setup.skipped


def test_a_failed_install_is_skipped_with_npm_s_last_words(fake_install: Path):
    _tool(fake_install, "node", NODE_20)
    _tool(fake_install, "npm", 'echo "npm error 404 Not Found - GET bullmq" >&2; exit 1\n')
    setup = bullmq.prepare({"PATH": str(fake_install)})
    assert "npm ci in bench/bullmq failed" in setup.skipped
    assert "404 Not Found" in setup.skipped
    assert not bullmq.STAMP.exists()


def test_npm_ci_runs_once_per_lock_file(fake_install: Path):
    _tool(fake_install, "node", NODE_20)
    _tool(fake_install, "npm", 'echo "$@" >> "${0%/*}/npm-calls"\n')
    env = {"PATH": str(fake_install)}
    assert bullmq.prepare(env) == bullmq.Setup(node="v20.1.0", bullmq="6.7.6")
    assert bullmq.prepare(env).ready
    assert (fake_install / "npm-calls").read_text() == "ci --no-audit --no-fund\n"
    bullmq.LOCK.write_text('{"lockfileVersion": 3, "changed": true}\n')
    assert bullmq.prepare(env).ready
    assert (fake_install / "npm-calls").read_text().count("ci") == 2


def test_the_enqueuing_side_sends_one_json_line_and_reads_one_back(fake_install: Path,
                                                                   tmp_path: Path):
    """The serve protocol, with a stand-in node that echoes the command it got."""
    _tool(fake_install, "node", 'while read line; do echo "{\\"seconds\\": 0.5, '
                                '\\"got\\": $line}"; done\n')
    env = {"PATH": str(fake_install), "BENCH_BULLMQ_URL": "redis://127.0.0.1:7001/2"}
    side = bullmq.BullMQSide(env, tmp_path / "serve.log")
    try:
        assert side.one_at_a_time("noop", 200) == 0.5
        assert side.ask("enqueue-bulk", jobs=3, data={"ms": 10})["got"] == {
            "scenario": "enqueue-bulk", "jobs": 3, "data": {"ms": 10}}
        with pytest.raises(ValueError, match="one payload"):
            side.bulk("probe", [{"kind": "a"}, {"kind": "b"}])
    finally:
        side.shutdown()
    assert side.process.returncode == 0


def test_a_failing_enqueuing_side_raises_with_its_log(fake_install: Path, tmp_path: Path):
    _tool(fake_install, "node", 'read line; echo "Error: boom" >&2; exit 1\n')
    env = {"PATH": str(fake_install), "BENCH_BULLMQ_URL": "redis://127.0.0.1:7001/2"}
    side = bullmq.BullMQSide(env, tmp_path / "serve.log")
    try:
        with pytest.raises(RuntimeError, match="(?s)enqueue-one: bench.mjs printed nothing.*boom"):
            side.one_at_a_time("noop", 200)
    finally:
        side.shutdown()


# --- the table, the chart and ab.py with a third system ---------------------------------


def test_the_table_has_a_bullmq_column_and_both_ratios():
    text = report.table(_payload())
    header = text.splitlines()[2]
    for column in ("plain Celery", "BullMQ", "service/plain", "service/BullMQ"):
        assert column in header
    assert "BullMQ 6.7.6 on Node v20.20.2" in text
    one = _row(_payload(), "1 enqueue one at a time")
    assert (one["BullMQ"], one["service/plain"], one["service/BullMQ"]) == ("3,000/s", "0.50×",
                                                                           "0.30×")
    drain = _row(_payload(), "2 drain no-op")
    assert "BullMQ c50" in drain["scenario"]
    assert drain["BullMQ"] == "6,000/s" and drain["service/BullMQ"] == "0.10×"
    tried = [row[0] for row in report.rows(_payload()) if "BullMQ drain at" in row[0]]
    assert [int(re.search(r"concurrency (\d+)", label)[1]) for label in tried] == [1, 10, 50]
    c1 = _row(_payload(), "2   BullMQ drain at concurrency 1")
    assert (c1["service"], c1["BullMQ"], c1["service/BullMQ"]) == ("", "2,000/s", "0.30×")
    assert "(best)" in _row(_payload(), "2   BullMQ drain at concurrency 50")["scenario"]
    cpu = _row(_payload(), "  worker CPU per job")
    assert (cpu["service/plain"], cpu["service/BullMQ"]) == ("+1,000 µs", "+2,380 µs")
    idle = _row(_payload(), "3 idle: enqueue→started p50")
    assert (idle["BullMQ"], idle["service/BullMQ"]) == ("1.00 ms", "2.00×")
    critical = _row(_payload(), "5   time until CRITICAL done (one by one)")
    assert (critical["BullMQ"], critical["service/BullMQ"]) == ("0.10 s", "4.00×")


def test_figures_bullmq_has_no_counterpart_for_are_dashes():
    load = _row(_payload(), "3 50% load: enqueue→started p50")
    assert (load["BullMQ"], load["service/BullMQ"]) == ("—", "")
    sleeps = _row(_payload(), "2 drain 10 ms sleeps")
    assert sleeps["BullMQ"] == "—" and sleeps["service/plain"] == "0.71×"
    on_postgres = _row(_payload(), "1 enqueue one at a time", db="postgresql")
    assert (on_postgres["BullMQ"], on_postgres["service/BullMQ"]) == ("—", "")


def test_the_in_transaction_enqueue_row_compares_with_delay_at_commit_only():
    payload = _payload()
    throughput = payload["results"]["sqlite"]["throughput"]["median"]
    throughput["service"]["enqueue_one_tx_rate"] = 700.0
    throughput["plain"]["enqueue_one_tx_rate"] = 500.0
    row = _row(payload, "1 enqueue in the caller's transaction")
    assert (row["service"], row["plain Celery"], row["service/plain"]) == ("700/s", "500/s",
                                                                          "1.40×")
    assert (row["BullMQ"], row["service/BullMQ"], row[""]) == ("—", "", "met")
    throughput["service"]["enqueue_one_tx_rate"] = 400.0
    assert _row(payload, "1 enqueue in the caller's transaction")[""] == "NOT MET"
    older = _payload()  # results from before the scenario: no row, no error
    assert not any("transaction" in row[0] for row in report.rows(older))


def test_a_skipped_bullmq_is_named_in_the_table():
    payload = _payload(with_bullmq=False)
    assert "BullMQ skipped: node is not on PATH" in report.table(payload)
    assert _row(payload, "1 enqueue bulk")["BullMQ"] == "—"
    assert not any("concurrency" in row[0] for row in report.rows(payload))


def test_a_results_file_from_before_bullmq_still_prints():
    payload = _payload(with_bullmq=False)
    del payload["bullmq"]
    assert "BullMQ skipped" not in report.table(payload)


def test_the_chart_draws_three_systems(tmp_path: Path):
    pytest.importorskip("matplotlib")
    from bench import chart

    assert chart.chart(_payload(), tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 10_000


def test_ab_compares_the_service_and_ignores_a_third_system():
    a, b = _payload(), _payload()
    b["code"] = "def5678"
    b["results"]["sqlite"]["throughput"]["median"]["service"]["drain_rate"] = 540.0
    assert ab.figures(a)[("sqlite", "throughput: drain_rate")]["bullmq"] == 6000.0
    text = ab.table([a], [b])
    drain = next(line for line in text.splitlines() if "throughput: drain_rate" in line)
    assert "+11.1 %" in drain  # B 10 % slower: A/B − 1
    assert "drain_c50_rate" not in text  # a BullMQ-only figure has no service value
