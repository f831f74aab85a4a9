"""The suite's chart (PNG, matplotlib): four panels from its JSON figures.

Bars per system (service, plain Celery, BullMQ where it ran); a figure a
system has no counterpart for is left empty and labelled "—".
"""

from __future__ import annotations

import math
from pathlib import Path

from bench.report import (
    LATENESS_P99_TARGET_S,
    PRIORITY_CONCURRENCY,
    PROMOTER_TARGET_RATE,
    RSS_TOLERANCE_MB,
    STARTED_P50_TARGET_MS,
    fmt,
)

SYSTEMS = ("service", "plain", "bullmq")
COLORS = {"service": "#1f77b4", "plain": "#ff7f0e", "bullmq": "#2ca02c"}


def chart(payload: dict, path: Path) -> bool:
    """Four panels: rates, latencies, priority, delayed. False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -r requirements-dev.txt)")
        return False
    results = payload["results"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    colors = COLORS
    _chart_rates(axes[0][0], results, colors)
    _chart_latency(axes[0][1], results, colors)
    _chart_priority(axes[1][0], results, colors)
    _chart_delayed(axes[1][1], results)
    for ax in (a for row in axes for a in row):
        if not ax.has_data():  # a scenario this run did not include
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{ax.get_title()}\n(not in this run)", ha="center",
                    va="center", fontsize=9, color="grey", transform=ax.transAxes)
            ax.set_title("")
    label = f"median of {payload['runs']} runs" if payload["runs"] > 1 else "1 run"
    fig.suptitle(
        f"IntelGraph Tasks vs plain Celery 5.7{_bullmq_title(payload)} — {label}, {payload['cpus']} CPUs, "
        f"code {payload['code']}, {payload['when']}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _bullmq_title(payload: dict) -> str:
    setup = payload.get("bullmq") or {}
    return f" and BullMQ {setup['bullmq']}" if setup.get("bullmq") and not setup.get("skipped") else ""


def _values(median: dict, keys: list) -> list[float]:
    """The figures in ``keys`` order; NaN (an empty bar) for one this system lacks."""
    return [median.get(k, math.nan) for k, *_ in keys]


def _bars(ax, labels, series: dict, colors: dict, unit: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        color = colors.get(name.split(" ")[0], None)
        hatch = "//" if "postgresql" in name else None
        bars = ax.bar(xs, values, width, label=name, color=color, hatch=hatch, alpha=0.9)
        ax.bar_label(bars, labels=[fmt(v) for v in values], fontsize=7, rotation=90, padding=2)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(unit)
    ax.legend(fontsize=8)


def _chart_rates(ax, results, colors) -> None:
    keys = [
        ("enqueue_one_rate", "enqueue\none"),
        ("enqueue_bulk_rate", "enqueue\nbulk"),
        ("drain_rate", "drain no-op\nprefork c2"),
        ("sleep_rate", "drain 10 ms\nthreads c8"),
    ]
    series = {}
    for db, r in results.items():
        if "throughput" in r:
            for system, m in r["throughput"]["median"].items():
                series[f"{system} {db}"] = _values(m, keys)
    if series:
        _bars(ax, [label for _, label in keys], series, colors, "jobs/s (log)")
        ax.set_yscale("log")
    ax.set_title("1–2, 6: enqueue and drain rates", fontsize=10)


def _chart_latency(ax, results, colors) -> None:
    r = results.get("sqlite", {}).get("latency")
    keys = [
        ("idle_started_p50_ms", "idle\nstarted p50"),
        ("idle_started_p99_ms", "idle\nstarted p99"),
        ("idle_finished_p50_ms", "idle\nfinished p50"),
        ("load_started_p50_ms", "50% load\nstarted p50"),
        ("load_started_p99_ms", "50% load\nstarted p99"),
        ("load_finished_p99_ms", "50% load\nfinished p99"),
    ]
    if r:
        series = {s: _values(m, keys) for s, m in r["median"].items()}
        _bars(ax, [label for _, label in keys], series, colors, "ms (log)")
        ax.set_yscale("log")
        ax.axhline(STARTED_P50_TARGET_MS, color="grey", linestyle=":", linewidth=1)
    ax.set_title("3: latency from the enqueue call (SQLite; dotted: 3 ms target)", fontsize=10)


def _chart_priority(ax, results, colors) -> None:
    r = results.get("sqlite", {}).get("priority")
    if r and "one" in r:
        key = "background_before_last_critical"
        labels = ["BACKGROUND before\nlast CRITICAL:\none by one", "… in one call",
                  "seconds until\nCRITICAL done,\none by one (×10)"]
        series = {
            s: [r["one"]["median"][s][key], r["bulk"]["median"][s][key],
                10 * r["one"]["median"][s]["critical_done_s"]]
            for s in SYSTEMS if s in r["one"]["median"] and s in r["bulk"]["median"]
        }
        _bars(ax, labels, series, colors, "count / deciseconds")
        ax.axhline(PRIORITY_CONCURRENCY, color="grey", linestyle=":", linewidth=1)
    ax.set_title(
        "5: 100 CRITICAL into 10,000 BACKGROUND, worker busy (dotted: target)", fontsize=10
    )


def _chart_delayed(ax, results) -> None:
    r = results.get("sqlite", {}).get("delayed")
    if r:
        s, n = r["service"], r["sizes"]
        labels = [
            "lateness p50 (s)",
            "lateness p99 (s)",
            "promoter\n(1,000 jobs/s)",
            "worker RSS\ngrowth (MB)",
        ]
        values = [
            s["lateness_p50_s"],
            s["lateness_p99_s"],
            s["burst_rate"] / 1000,
            (s["worker_rss_after"] - s["worker_rss_before"]) / 1024 / 1024,
        ]
        targets = [None, LATENESS_P99_TARGET_S, PROMOTER_TARGET_RATE / 1000, RSS_TOLERANCE_MB]
        bars = ax.bar(range(4), values, 0.5, color="#1f77b4")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
        for x, t in enumerate(targets):
            if t is not None:
                ax.plot([x - 0.3, x + 0.3], [t, t], color="red", linewidth=2)
        ax.set_xticks(range(4), labels, fontsize=8)
        ax.set_title(
            f"4: service with {n['pending']:,} delayed jobs pending (red: target)", fontsize=10
        )
