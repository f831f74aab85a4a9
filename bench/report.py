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
#: Issue 17's first milestone for the batched no-op drain (jobs/s, one process).
BATCHED_MILESTONE = 5000


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
        if "latency" in results:
            out += _latency_rows(db, results["latency"])
        if "priority" in results:
            out += _priority_rows(db, results["priority"])
        if "delayed" in results:
            out += _delayed_rows(db, results["delayed"])
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
        _rate_row(
            f"1 enqueue one at a time ({n['one']:,})",
            db,
            s,
            p,
            "enqueue_one_rate",
            "≥ 1.0×",
            lambda r: r >= 1.0,
        ),
        _rate_row(
            f"1 enqueue bulk, 1,000/batch ({n['bulk']:,})",
            db,
            s,
            p,
            "enqueue_bulk_rate",
            f"≥ {BULK_TARGET:,}/s",
            lambda r: bulk_ok,
        ),
        _rate_row(
            f"2 drain no-op, prefork c2 ({n['bulk']:,})",
            db,
            s,
            p,
            "drain_rate",
            "≥ 1.0× (0.8×)",
            lambda r: r >= 1.0,
        ),
        (
            "  worker CPU per job",
            db,
            _fmt(s["drain_worker_cpu_us_per_job"], " µs"),
            _fmt(p["drain_worker_cpu_us_per_job"], " µs"),
            f"{added:+,.0f} µs",
            f"≤ +{CPU_ADDED_TARGET_US} µs",
            _verdict(added <= CPU_ADDED_TARGET_US),
        ),
        (
            "  Redis CPU per job",
            db,
            _fmt(s["drain_redis_cpu_us_per_job"], " µs"),
            _fmt(p["drain_redis_cpu_us_per_job"], " µs"),
            f"{redis_ratio:.2f}×",
            "",
            "",
        ),
        _rate_row(f"2 drain 10 ms sleeps, threads c8 ({n['sleep']:,})", db, s, p, "sleep_rate"),
        *_batched_rows(db, s, p, n),
    ]


def _batched_rows(db: str, s: dict, p: dict, n: dict) -> list:
    """The batched drain (service only) against plain Celery's drain at concurrency 2."""
    if "batched_drain_rate" not in s:
        return []
    ratio = s["batched_drain_rate"] / p["drain_rate"]
    return [
        (f"2 drain no-op, batched 100/msg, prefork c1 ({n['bulk']:,}) vs plain c2", db,
         _fmt(s["batched_drain_rate"], "/s"), _fmt(p["drain_rate"], "/s"), f"{ratio:.2f}×",
         f"≥ {BATCHED_MILESTONE:,}/s", _verdict(s["batched_drain_rate"] >= BATCHED_MILESTONE)),
        ("  worker CPU per job (batched)", db,
         _fmt(s["batched_drain_worker_cpu_us_per_job"], " µs"),
         _fmt(p["drain_worker_cpu_us_per_job"], " µs"), "", "", ""),
    ]


def _ms_row(label, db, s, p, key, target="", ok=None):
    ratio = s[key] / p[key]
    verdict = _verdict(ok(s[key]) if ok else None)
    return (label, db, _fmt(s[key], " ms"), _fmt(p[key], " ms"), f"{ratio:.2f}×", target, verdict)


def _latency_rows(db: str, t: dict) -> list:
    s, p = t["median"]["service"], t["median"]["plain"]
    out = [
        _ms_row(
            "3 idle: enqueue→started p50",
            db,
            s,
            p,
            "idle_started_p50_ms",
            f"≤ {STARTED_P50_TARGET_MS:.0f} ms",
            lambda v: v <= STARTED_P50_TARGET_MS,
        )
    ]
    for phase, text in (("idle", "idle"), ("load", "50% load")):
        for what in ("started", "finished"):
            for q in ("p50", "p99"):
                if (phase, what, q) != ("idle", "started", "p50"):
                    out.append(
                        _ms_row(f"3 {text}: enqueue→{what} {q}", db, s, p, f"{phase}_{what}_{q}_ms")
                    )
    out.append(
        (
            "  50% load offered",
            db,
            _fmt(s["load_offered_rate"], "/s"),
            _fmt(p["load_offered_rate"], "/s"),
            "",
            "",
            "",
        )
    )
    return out


def _priority_rows(db: str, t: dict) -> list:
    key = "background_before_last_critical"
    out = []
    for arrival, how in (("one", "one by one"), ("bulk", "in one call")):
        if arrival not in t:  # a results file from before both arrivals were measured
            continue
        s, p = t[arrival]["median"]["service"], t[arrival]["median"]["plain"]
        out += [
            (
                f"5 BACKGROUND done before last CRITICAL, {how} ({t['backlog']:,}+{t['urgent']})",
                db,
                _fmt(s[key]),
                _fmt(p[key]),
                "",
                f"≤ {PRIORITY_CONCURRENCY} (concurrency)",
                _verdict(s[key] <= PRIORITY_CONCURRENCY),
            ),
            (
                f"5   time until CRITICAL done ({how})",
                db,
                _fmt(s["critical_done_s"], " s"),
                _fmt(p["critical_done_s"], " s"),
                f"{s['critical_done_s'] / p['critical_done_s']:.2f}×",
                "",
                "",
            ),
        ]
    return out


def _delayed_rows(db: str, t: dict) -> list:
    s, p, n = t["service"], t["plain"], t["sizes"]
    mb = 1024 * 1024
    rss_growth = (s["worker_rss_after"] - s["worker_rss_before"]) / mb
    plain_growth = (p["worker_rss_after"] - p["worker_rss_before"]) / mb
    return [
        (
            f"4 enqueue {n['pending']:,} delayed (add_bulk)",
            db,
            _fmt(s["enqueue_rate"], "/s"),
            _fmt(p["enqueue_rate"], "/s"),
            "",
            f"({n['plain_eta']:,} ETA tasks for plain)",
            "",
        ),
        (
            "4 database growth",
            db,
            _fmt((s["db_bytes_after"] - s["db_bytes_before"]) / mb, " MB"),
            "—",
            "",
            "",
            "",
        ),
        (
            "4 Redis growth",
            db,
            _fmt((s["redis_bytes_after"] - s["redis_bytes_before"]) / mb, " MB"),
            _fmt((p["redis_bytes_after"] - p["redis_bytes_before"]) / mb, " MB"),
            "",
            "",
            "",
        ),
        (
            "4 worker RSS before → after",
            db,
            f"{s['worker_rss_before'] / mb:.0f}→{s['worker_rss_after'] / mb:.0f} MB",
            f"{p['worker_rss_before'] / mb:.0f}→{p['worker_rss_after'] / mb:.0f} MB",
            f"{rss_growth:+.0f} / {plain_growth:+.0f} MB",
            f"± {RSS_TOLERANCE_MB} MB",
            _verdict(abs(rss_growth) <= RSS_TOLERANCE_MB),
        ),
        (
            f"4 promotion lateness p50 ({n['due']:,} due at 1,000/s)",
            db,
            _fmt(s["lateness_p50_s"], " s"),
            "—",
            "",
            "",
            "",
        ),
        (
            "4 promotion lateness p99",
            db,
            _fmt(s["lateness_p99_s"], " s"),
            "—",
            "",
            f"≤ {LATENESS_P99_TARGET_S:.0f} s",
            _verdict(s["lateness_p99_s"] <= LATENESS_P99_TARGET_S),
        ),
        (
            f"4 promoter rate ({n['burst']:,} due at once)",
            db,
            _fmt(s["burst_rate"], "/s"),
            "—",
            "",
            f"≥ {PROMOTER_TARGET_RATE:,}/s",
            _verdict(s["burst_rate"] >= PROMOTER_TARGET_RATE),
        ),
    ]


def table(payload: dict) -> str:
    header = ("scenario", "db", "service", "plain Celery", "ratio", "target", "")
    lines = rows(payload)
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    label = f"median of {payload['runs']} runs" if payload["runs"] > 1 else "1 run"
    if "postgresql" in payload["results"]:
        label += f"; PostgreSQL: {payload.get('pg_runs', 1)} run(s)"
    text = [
        f"IntelGraph Tasks vs plain Celery ({label}, code {payload['code']}, "
        f"{payload['cpus']} CPUs, {payload['wall_s']:.0f} s)",
        fmt.format(*header),
        "-" * (sum(widths) + 2 * (len(widths) - 1)),
    ]
    text += [fmt.format(*r) for r in lines]
    return "\n".join(text)


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
    colors = {"service": "#1f77b4", "plain": "#ff7f0e"}
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
        f"IntelGraph Tasks vs plain Celery 5.7 — {label}, {payload['cpus']} CPUs, "
        f"code {payload['code']}, {payload['when']}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _bars(ax, labels, series: dict, colors: dict, unit: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        color = colors.get(name.split(" ")[0], None)
        hatch = "//" if "postgresql" in name else None
        bars = ax.bar(xs, values, width, label=name, color=color, hatch=hatch, alpha=0.9)
        ax.bar_label(bars, labels=[_fmt(v) for v in values], fontsize=7, rotation=90, padding=2)
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
            for system in ("service", "plain"):
                m = r["throughput"]["median"][system]
                series[f"{system} {db}"] = [m[k] for k, _ in keys]
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
        series = {s: [r["median"][s][k] for k, _ in keys] for s in ("service", "plain")}
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
            for s in ("service", "plain")
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
