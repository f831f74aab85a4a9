"""``bench/suite.py --fastpaths``: each fast path on and off, in one invocation.

The service alone (no plain Celery) runs the scenarios the fast paths exist
for with every fast path on, every one off, and each one turned off by itself
(``JOB_FASTPATH`` = every name but that one), in one child process per
variant and run, so the enqueuing process and its workers read the same
setting. Variants are interleaved and their order reversed every other run;
the table holds the median of ``--runs`` runs per variant and, per fast path,
the gain on the figures of its scenario: cost without it over cost with it,
minus 1 (for a rate: rate with it over rate without it, minus 1).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.fastpath import FAST_PATHS

ALL_ON, ALL_OFF = "all on", "all off"


@dataclass(frozen=True)
class Figure:
    """One figure a scenario reports: where it is in the results, and which way is better."""

    scenario: str  # a bench scenario: throughput, latency
    key: str  # key in that scenario's per-run figures
    label: str
    unit: str
    higher_is_better: bool


#: The figures each fast path exists for (its registry ``scenario``, as measured here).
FIGURES: dict[str, tuple[Figure, ...]] = {
    "redis-clients": (
        Figure("throughput", "drain_worker_cpu_us_per_job", "drain no-op: worker CPU per job",
               "µs", False),
        Figure("throughput", "drain_rate", "drain no-op, prefork c2", "/s", True),
    ),
    "message-templates": (
        Figure("throughput", "enqueue_one_rate", "add_job one at a time", "/s", True),
        Figure("throughput", "enqueue_bulk_rate", "add_bulk, 1,000 a call", "/s", True),
    ),
    "redis-push": (
        Figure("throughput", "enqueue_one_rate", "add_job one at a time", "/s", True),
        Figure("throughput", "enqueue_bulk_rate", "add_bulk, 1,000 a call", "/s", True),
    ),
    "unacked-after-pool-write": (
        Figure("latency", "idle_started_p50_ms", "idle: enqueue→started p50", "ms", False),
    ),
}
#: Fast paths that run only when others are on (``tasks/fastpath/__init__.py``):
#: turning one of those off turns these off too.
NEEDS = {"redis-push": ("redis-clients", "message-templates")}


def names() -> list[str]:
    """The registered fast paths; each must have its figures here."""
    registered = [path.name for path in FAST_PATHS]
    unmeasured = [name for name in registered if name not in FIGURES]
    if unmeasured:
        raise SystemExit(f"bench/fastpaths.py has no figures for fast paths {unmeasured}: "
                         "add what each exists for to FIGURES")
    return registered


def scenarios_of(paths: list[str]) -> list[str]:
    order = ("throughput", "latency")
    wanted = {figure.scenario for name in paths for figure in FIGURES[name]}
    return [s for s in order if s in wanted]


def chosen(value: str) -> list[str]:
    """``--fastpaths``' value: ``all``, or a comma list of the fast paths to turn off one by one."""
    all_names = names()
    if value == "all":
        return all_names
    picked = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(picked) - set(all_names))
    if unknown or not picked:
        raise SystemExit(f"--fastpaths: unknown fast paths {unknown}; known: "
                         f"{', '.join(all_names)} (or all)")
    return [name for name in all_names if name in picked]


def variants(selected: list[str] | None = None) -> list[tuple[str, str, list[str]]]:
    """``(label, JOB_FASTPATH, scenarios)`` per variant: all on, all off, and each of
    ``selected`` (default: every fast path) off by itself, on the scenarios they exist for."""
    all_names = names()
    selected = all_names if selected is None else selected
    scenarios = scenarios_of(selected)
    out = [(ALL_ON, "on", scenarios), (ALL_OFF, "off", scenarios)]
    for name in selected:
        keep = ",".join(n for n in all_names if n != name)
        out.append((f"{name} off", keep, scenarios_of([name])))
    return out


def run(run_child: Callable[[str, list[str], dict, str], dict], runs: int,
        selected: list[str] | None = None) -> dict:
    """Every variant ``runs`` times, interleaved; ``run_child(label, scenarios, env, tag)``
    returns one child's figures. Per variant: each run's figures per scenario."""
    plan = variants(selected)
    per_variant: dict[str, dict[str, list[dict]]] = {label: {} for label, _, _ in plan}
    states: dict[str, dict[str, str]] = {}
    for i in range(runs):
        for label, setting, scenarios in plan if i % 2 == 0 else plan[::-1]:
            print(f"fast paths: run {i + 1}/{runs}, {label} (JOB_FASTPATH={setting})", flush=True)
            figures = run_child(label, scenarios, {"JOB_FASTPATH": setting}, f"{i}")
            for scenario in scenarios:
                result = figures[scenario]
                per_variant[label].setdefault(scenario, []).append(result["runs"]["service"][0])
                states[label] = result.get("fastpaths", {})
    return {
        "variants": [{"label": label, "JOB_FASTPATH": setting, "scenarios": scenarios}
                     for label, setting, scenarios in plan],
        "selected": [label[: -len(" off")] for label, _, _ in plan[2:]],
        "runs": per_variant,
        "enqueue_process_state": states,
    }


def _median(figures: dict, label: str, figure: Figure) -> float | None:
    values = [r[figure.key] for r in figures["runs"][label].get(figure.scenario, [])
              if r.get(figure.key) is not None]
    return statistics.median(values) if values else None


def _spread(figures: dict, label: str, figure: Figure) -> str:
    values = [r[figure.key] for r in figures["runs"][label].get(figure.scenario, [])
              if r.get(figure.key) is not None]
    return "–".join(_fmt(v, "") for v in (min(values), max(values))) if values else "—"


def gain(on: float | None, off: float | None, higher_is_better: bool) -> float | None:
    """Percent better with the fast path than without it (negative: worse with it)."""
    if not on or not off:
        return None
    return 100 * ((on / off) if higher_is_better else (off / on)) - 100


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{text} {unit}".rstrip() if unit != "/s" else f"{text}/s"


def rows(figures: dict) -> list[tuple[str, ...]]:
    """(fast path, its scenario, figure, all on, it off, gain, all off, gain of all) per figure."""
    scenario_text = {path.name: path.scenario for path in FAST_PATHS}
    out = []
    for name in figures.get("selected") or names():
        for figure in FIGURES[name]:
            on = _median(figures, ALL_ON, figure)
            off = _median(figures, f"{name} off", figure)
            none = _median(figures, ALL_OFF, figure)
            g, g_all = gain(on, off, figure.higher_is_better), gain(on, none, figure.higher_is_better)
            out.append((
                name, scenario_text[name], figure.label,
                _fmt(on, figure.unit), _fmt(off, figure.unit),
                "—" if g is None else f"{g:+.1f} %",
                _fmt(none, figure.unit), "—" if g_all is None else f"{g_all:+.1f} %",
                _spread(figures, ALL_ON, figure), _spread(figures, f"{name} off", figure),
            ))  # fmt: skip
    return out


def table(payload: dict) -> str:
    figures = payload["fastpaths"]
    header = ("fast path", "exists for", "figure", "all on", "it off", "gain",
              "all off", "gain (all)", "on: runs", "it off: runs")
    lines = rows(figures)
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    text = [
        f"Fast paths on and off (service only, {payload['database']}, median of "
        f"{payload['runs']} runs per variant, code {payload['code']}, {payload['cpus']} CPUs, "
        f"{payload['wall_s']:.0f} s)",
        fmt.format(*header),
        "-" * (sum(widths) + 2 * (len(widths) - 1)),
        *(fmt.format(*r) for r in lines),
        "gain: how much better the figure is with the fast path than without it "
        "(rates: on/off − 1; times and CPU: off/on − 1).",
    ]
    for name, needs in NEEDS.items():
        text.append(f"{name} runs only with {' and '.join(needs)} on: turning one of those "
                    f"off turns {name} off too.")
    for label, state in figures.get("enqueue_process_state", {}).items():
        on = sorted(n for n, s in state.items() if s == "on")
        text.append(f"  enqueuing process, {label}: on = {', '.join(on) or 'none'}")
    return "\n".join(text)


def default_json(directory: Path) -> Path:
    return directory / "fastpaths.json"
