"""The suite's table (text) and chart (PNG), both built from its JSON figures."""

from __future__ import annotations

import math
from pathlib import Path

#: The issue's targets, as (check on the figures, text). Ratios are service / plain.
BULK_TARGET = 20000
STARTED_P50_TARGET_MS = 3.0
CPU_ADDED_TARGET_US = 200
LATENESS_P99_TARGET_S = 1.0
PROMOTER_TARGET_RATE = 5000
RSS_TOLERANCE_MB = 10
PRIORITY_CONCURRENCY = 2


def _fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and abs(value) < 100:
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return text + unit


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "NOT MET")


def rows(payload: dict) -> list[tuple[str, str, str, str, str, str, str]]:
    """(what, database, service, plain, ratio, target, verdict) per line."""
    out: list = []
    for db, results in payload["results"].items():
        if "throughput" in results:
            out += _throughput_rows(db, results["throughput"])
    return out


def _rate_row(label, db, s, p, key, target="", ok=None):
    ratio = s[key] / p[key]
    verdict = _verdict(ok(ratio) if ok else None)
    return (label, db, _fmt(s[key], "/s"), _fmt(p[key], "/s"), f"{ratio:.2f}×", target, verdict)


def _throughput_rows(db: str, t: dict) -> list:
    s, p, n = t["median"]["service"], t["median"]["plain"], t["sizes"]
    bulk_ok = s["enqueue_bulk_rate"] >= BULK_TARGET
    added = s["drain_worker_cpu_us_per_job"] - p["drain_worker_cpu_us_per_job"]
    redis_ratio = s["drain_redis_cpu_us_per_job"] / p["drain_redis_cpu_us_per_job"]
    return [
        _rate_row(f"1 enqueue one at a time ({n['one']:,})", db, s, p, "enqueue_one_rate",
                  "≥ 1.0×", lambda r: r >= 1.0),
        _rate_row(f"1 enqueue bulk, 1,000/batch ({n['bulk']:,})", db, s, p, "enqueue_bulk_rate",
                  f"≥ {BULK_TARGET:,}/s", lambda r: bulk_ok),
        _rate_row(f"2 drain no-op, prefork c2 ({n['bulk']:,})", db, s, p, "drain_rate",
                  "≥ 1.0× (0.8×)", lambda r: r >= 1.0),
        ("  worker CPU per job", db, _fmt(s["drain_worker_cpu_us_per_job"], " µs"),
         _fmt(p["drain_worker_cpu_us_per_job"], " µs"), f"+{added:,.0f} µs",
         f"≤ +{CPU_ADDED_TARGET_US} µs", _verdict(added <= CPU_ADDED_TARGET_US)),
        ("  Redis CPU per job", db, _fmt(s["drain_redis_cpu_us_per_job"], " µs"),
         _fmt(p["drain_redis_cpu_us_per_job"], " µs"), f"{redis_ratio:.2f}×", "", ""),
        _rate_row(f"2 drain 10 ms sleeps, threads c8 ({n['sleep']:,})", db, s, p, "sleep_rate"),
    ]


def table(payload: dict) -> str:
    header = ("scenario", "db", "service", "plain Celery", "ratio", "target", "")
    lines = rows(payload)
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    label = f"median of {payload['runs']} runs" if payload["runs"] > 1 else "1 run"
    text = [f"IntelGraph Tasks vs plain Celery ({label}, code {payload['code']}, {payload['cpus']} CPUs)",
            fmt.format(*header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    text += [fmt.format(*r) for r in lines]
    return "\n".join(text)


def chart(payload: dict, path: Path) -> bool:
    return False
