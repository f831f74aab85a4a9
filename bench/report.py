"""The suite's table (text), built from its JSON figures; the chart is ``bench/chart.py``.

One row per figure: the service, plain Celery and BullMQ, then the ratios
service / plain and service / BullMQ. BullMQ's cell is "—" where it has no
counterpart (the 10 ms sleeps, 50 % load, delayed jobs), on a database it did
not run with (it has none: it runs with the first), or when it was skipped.
"""

from __future__ import annotations

import math
import re

#: The issue's targets, as (check on the figures, text). Ratios are service / plain.
BULK_TARGET = 20000
STARTED_P50_TARGET_MS = 3.0
CPU_ADDED_TARGET_US = 200
LATENESS_P99_TARGET_S = 1.0
PROMOTER_TARGET_RATE = 5000
RSS_TOLERANCE_MB = 10
PRIORITY_CONCURRENCY = 2
#: Issue 17's first milestone for the batched no-op drain (jobs/s, one process).
BATCHED_MILESTONE = 5000

HEADER = ("scenario", "db", "service", "plain Celery", "BullMQ", "service/plain",
          "service/BullMQ", "target", "")  # fmt: skip


def fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and abs(value) < 100:
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return text + unit


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "NOT MET")


def _get(values: dict | None, key: str):
    return None if values is None else values.get(key)


def _ratio(a, b) -> str:
    """``a / b`` as ``1.23×``; empty when either is missing."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return ""
    return f"{a / b:.2f}×"


def _added(a, b) -> str:
    """``a − b`` in µs: CPU the service adds per job."""
    return "" if a is None or b is None else f"{a - b:+,.0f} µs"


def _row(label, db, s, p, b, key, unit, target="", verdict="", compare=_ratio) -> tuple:
    """(what, db, service, plain, BullMQ, service/plain, service/BullMQ, target, verdict)."""
    sv, pv, bv = _get(s, key), _get(p, key), _get(b, key)
    return (label, db, fmt(sv, unit), fmt(pv, unit), fmt(bv, unit), compare(sv, pv),
            compare(sv, bv), target, verdict)  # fmt: skip


def _systems(median: dict) -> tuple[dict, dict, dict | None]:
    return median["service"], median["plain"], median.get("bullmq")


def rows(payload: dict) -> list[tuple]:
    """One tuple per line, in ``HEADER``'s order."""
    out: list = []
    for db, results in payload["results"].items():
        if "throughput" in results:
            out += _throughput_rows(db, results["throughput"])
        if "latency" in results:
            out += _latency_rows(db, results["latency"])
        if "priority" in results:
            out += _priority_rows(db, results["priority"])
        if "delayed" in results:
            out += _delayed_rows(db, results["delayed"])
    return out


def _throughput_rows(db: str, t: dict) -> list:
    (s, p, b), n = _systems(t["median"]), t["sizes"]
    one = s["enqueue_one_rate"] / p["enqueue_one_rate"]
    drain = s["drain_rate"] / p["drain_rate"]
    added = s["drain_worker_cpu_us_per_job"] - p["drain_worker_cpu_us_per_job"]
    best = f"; BullMQ c{b['drain_concurrency']:.0f}" if b else ""
    out = [
        _row(f"1 enqueue one at a time ({n['one']:,})", db, s, p, b, "enqueue_one_rate", "/s",
             "≥ 1.0×", _verdict(one >= 1.0)),
        *_in_transaction_row(db, s, p, n),
        _row(f"1 enqueue bulk, 1,000/batch ({n['bulk']:,})", db, s, p, b, "enqueue_bulk_rate",
             "/s", f"≥ {BULK_TARGET:,}/s", _verdict(s["enqueue_bulk_rate"] >= BULK_TARGET)),
        _row(f"2 drain no-op, prefork c2{best} ({n['bulk']:,})", db, s, p, b, "drain_rate",
             "/s", "≥ 1.0× (0.8×)", _verdict(drain >= 1.0)),
        _row("  worker CPU per job", db, s, p, b, "drain_worker_cpu_us_per_job", " µs",
             f"≤ +{CPU_ADDED_TARGET_US} µs", _verdict(added <= CPU_ADDED_TARGET_US),
             compare=_added),
        _row("  Redis CPU per job", db, s, p, b, "drain_redis_cpu_us_per_job", " µs"),
    ]  # fmt: skip
    tried = [k for k in (b or {}) if re.fullmatch(r"drain_c\d+_rate", k)]
    for key in sorted(tried, key=lambda k: int(k[len("drain_c"):-len("_rate")])):
        concurrency = int(key[len("drain_c"):-len("_rate")])
        mark = " (best)" if concurrency == b["drain_concurrency"] else ""
        out.append((f"2   BullMQ drain at concurrency {concurrency}{mark}", db, "", "",
                    fmt(b[key], "/s"), "", _ratio(s["drain_rate"], b[key]), "", ""))  # fmt: skip
    out.append(_row(f"2 drain 10 ms sleeps, threads c8 ({n['sleep']:,})", db, s, p, b,
                    "sleep_rate", "/s"))  # fmt: skip
    return out + _batched_rows(db, s, p, b, n)


def _in_transaction_row(db: str, s: dict, p: dict, n: dict) -> list:
    """``add_job`` in the caller's transaction with one row of its own, against ``.delay()``
    at the commit of the same write (issue 17); absent from results older than it."""
    if "enqueue_one_tx_rate" not in s:
        return []
    ok = s["enqueue_one_tx_rate"] >= p["enqueue_one_tx_rate"]
    return [_row(f"1 enqueue in the caller's transaction, +1 row ({n['one']:,})", db, s, p, None,
                 "enqueue_one_tx_rate", "/s", "≥ 1.0×", _verdict(ok))]


def _batched_rows(db: str, s: dict, p: dict, b: dict | None, n: dict) -> list:
    """The batched drain (service only, prefork c1) against plain Celery's drain (c2) and
    BullMQ's at concurrency 1 (issue 17's target: >= 1.0x BullMQ c1)."""
    if "batched_drain_rate" not in s:
        return []
    rate, bull = s["batched_drain_rate"], _get(b, "drain_c1_rate")
    return [
        (f"2 drain no-op, batched 100/msg, prefork c1 ({n['bulk']:,}); plain c2, BullMQ c1",
         db, fmt(rate, "/s"), fmt(p["drain_rate"], "/s"), fmt(bull, "/s"),
         _ratio(rate, p["drain_rate"]), _ratio(rate, bull),
         f"≥ {BATCHED_MILESTONE:,}/s, ≥ 1.0× BullMQ c1",
         _verdict(rate >= BATCHED_MILESTONE and (bull is None or rate >= bull))),
        ("  worker CPU per job (batched)", db, fmt(s["batched_drain_worker_cpu_us_per_job"], " µs"),
         fmt(p["drain_worker_cpu_us_per_job"], " µs"), "", "", "", "", ""),
    ]  # fmt: skip


def _latency_rows(db: str, t: dict) -> list:
    s, p, b = _systems(t["median"])
    out = [
        _row("3 idle: enqueue→started p50", db, s, p, b, "idle_started_p50_ms", " ms",
             f"≤ {STARTED_P50_TARGET_MS:.0f} ms",
             _verdict(s["idle_started_p50_ms"] <= STARTED_P50_TARGET_MS)),
    ]  # fmt: skip
    for phase, text in (("idle", "idle"), ("load", "50% load")):
        for what in ("started", "finished"):
            for q in ("p50", "p99"):
                if (phase, what, q) != ("idle", "started", "p50"):
                    label = f"3 {text}: enqueue→{what} {q}"
                    out.append(_row(label, db, s, p, b, f"{phase}_{what}_{q}_ms", " ms"))
    out.append(_row("  50% load offered", db, s, p, b, "load_offered_rate", "/s",
                    compare=lambda a, c: ""))  # fmt: skip
    return out


def _priority_rows(db: str, t: dict) -> list:
    key = "background_before_last_critical"
    out = []
    for arrival, how in (("one", "one by one"), ("bulk", "in one call")):
        if arrival not in t:  # a results file from before both arrivals were measured
            continue
        s, p, b = _systems(t[arrival]["median"])
        out += [
            _row(f"5 BACKGROUND done before last CRITICAL, {how} ({t['backlog']:,}+{t['urgent']})",
                 db, s, p, b, key, "", f"≤ {PRIORITY_CONCURRENCY} (concurrency)",
                 _verdict(s[key] <= PRIORITY_CONCURRENCY), compare=lambda a, c: ""),
            _row(f"5   time until CRITICAL done ({how})", db, s, p, b, "critical_done_s", " s"),
        ]  # fmt: skip
    return out


def _delayed_rows(db: str, t: dict) -> list:
    s, p, n = t["service"], t["plain"], t["sizes"]
    mb = 1024 * 1024
    rss_growth = (s["worker_rss_after"] - s["worker_rss_before"]) / mb
    plain_growth = (p["worker_rss_after"] - p["worker_rss_before"]) / mb

    def line(label, service, plain="—", ratio="", target="", verdict=""):
        return (label, db, service, plain, "—", ratio, "", target, verdict)

    return [
        line(f"4 enqueue {n['pending']:,} delayed (add_bulk)", fmt(s["enqueue_rate"], "/s"),
             fmt(p["enqueue_rate"], "/s"), target=f"({n['plain_eta']:,} ETA tasks for plain)"),
        line("4 database growth", fmt((s["db_bytes_after"] - s["db_bytes_before"]) / mb, " MB")),
        line("4 Redis growth", fmt((s["redis_bytes_after"] - s["redis_bytes_before"]) / mb, " MB"),
             fmt((p["redis_bytes_after"] - p["redis_bytes_before"]) / mb, " MB")),
        line("4 worker RSS before → after",
             f"{s['worker_rss_before'] / mb:.0f}→{s['worker_rss_after'] / mb:.0f} MB",
             f"{p['worker_rss_before'] / mb:.0f}→{p['worker_rss_after'] / mb:.0f} MB",
             f"{rss_growth:+.0f} / {plain_growth:+.0f} MB", f"± {RSS_TOLERANCE_MB} MB",
             _verdict(abs(rss_growth) <= RSS_TOLERANCE_MB)),
        line(f"4 promotion lateness p50 ({n['due']:,} due at 1,000/s)",
             fmt(s["lateness_p50_s"], " s")),
        line("4 promotion lateness p99", fmt(s["lateness_p99_s"], " s"),
             target=f"≤ {LATENESS_P99_TARGET_S:.0f} s",
             verdict=_verdict(s["lateness_p99_s"] <= LATENESS_P99_TARGET_S)),
        line(f"4 promoter rate ({n['burst']:,} due at once)", fmt(s["burst_rate"], "/s"),
             target=f"≥ {PROMOTER_TARGET_RATE:,}/s",
             verdict=_verdict(s["burst_rate"] >= PROMOTER_TARGET_RATE)),
    ]  # fmt: skip


def bullmq_line(payload: dict) -> str:
    """Which BullMQ ran, or why none did; empty for results from before it was measured."""
    setup = payload.get("bullmq")
    if not setup:
        return ""
    if setup.get("skipped"):
        return f"BullMQ skipped: {setup['skipped']}"
    return (f"BullMQ {setup['bullmq']} on Node {setup['node']}, one worker process; "
            "drain: the best of the concurrencies tried (rows below it)")


def table(payload: dict) -> str:
    lines = rows(payload)
    widths = [max(len(str(r[i])) for r in [HEADER, *lines]) for i in range(len(HEADER))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    label = f"median of {payload['runs']} runs" if payload["runs"] > 1 else "1 run"
    if "postgresql" in payload["results"]:
        label += f"; PostgreSQL: {payload.get('pg_runs', 1)} run(s)"
    text = [
        f"IntelGraph Tasks vs plain Celery and BullMQ ({label}, code {payload['code']}, "
        f"{payload['cpus']} CPUs, {payload['wall_s']:.0f} s)",
        *filter(None, [bullmq_line(payload)]),
        fmt.format(*HEADER),
        "-" * (sum(widths) + 2 * (len(widths) - 1)),
    ]
    text += [fmt.format(*r) for r in lines]
    return "\n".join(text)
