"""A/B: the suite of two checkouts, interleaved, and per figure the median ratio B/A.

    .venv/bin/python bench/ab.py --a /work/wt-before --b . --rounds 3 \\
        -- --scenarios throughput,latency,priority --runs 1
    .venv/bin/python bench/ab.py --analyse var/bench/ab      # the table again, from the files

Each checkout runs its *own* ``bench/suite.py`` (its own cwd and
interpreter, ``<checkout>/.venv/bin/python``) with the arguments after
``--``, round after round, the order alternating (A B, B A, A B …) so a
drift of the machine falls on both. Each run's JSON goes to ``--out``
(``a-<round>.json``, ``b-<round>.json``). The table: per database and
figure, the median over the rounds of each side's figure (each run's own
figure is already the median of its ``--runs``), B/A, how much worse B is
(rates: A/B − 1; times, CPU and counts: B/A − 1), the range of each side over
the rounds, and plain Celery's B/A from the same runs: the plain app is the
same code on both sides, so its B/A is the machine's noise. The last column
compares each run's service/plain ratio instead (median per side), which
cancels load that both systems of one run saw alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def figures(payload: dict) -> dict[tuple[str, str], dict[str, float]]:
    """``(database, figure) -> {system: value}`` from one suite JSON."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for db, results in payload["results"].items():
        for scenario, result in results.items():
            if scenario == "delayed":
                continue
            medians = {f"{scenario}": result.get("median")}
            if scenario == "priority":
                medians = {f"priority {arrival}": result[arrival]["median"]
                           for arrival in ("one", "bulk") if arrival in result}
            for prefix, median in medians.items():
                for system, values in (median or {}).items():
                    for key, value in values.items():
                        if isinstance(value, int | float):
                            out.setdefault((db, f"{prefix}: {key}"), {})[system] = value
    return out


def higher_is_better(figure: str) -> bool:
    return figure.endswith("_rate") and "offered" not in figure and "sent" not in figure


def worse(a: float, b: float, figure: str) -> float | None:
    """Percent by which B is worse than A (negative: better)."""
    if not a or not b:
        return None
    return 100 * ((a / b) if higher_is_better(figure) else (b / a)) - 100


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(a_runs: list[dict], b_runs: list[dict], skip: tuple[str, ...] = ()) -> str:
    a_figs = [figures(p) for p in a_runs]
    b_figs = [figures(p) for p in b_runs]
    keys = [k for k in a_figs[0] if all(k in f for f in a_figs + b_figs)]
    header = ("db", "figure (service)", "A median", "B median", "B/A", "B worse",
              "A range", "B range", "plain B/A", "vs plain: B worse")
    rows = []
    for db, figure in keys:
        if any(part in figure for part in skip):
            continue
        a = [f[(db, figure)].get("service") for f in a_figs]
        b = [f[(db, figure)].get("service") for f in b_figs]
        if None in a or None in b:
            continue
        pa = [f[(db, figure)].get("plain") for f in a_figs]
        pb = [f[(db, figure)].get("plain") for f in b_figs]
        ma, mb = statistics.median(a), statistics.median(b)
        plain = (statistics.median(pb) / statistics.median(pa)
                 if None not in pa + pb and statistics.median(pa) else None)
        w = worse(ma, mb, figure)
        # Each run's service/plain ratio (same run, same load), median per side, then B vs A.
        ra = [s / p for s, p in zip(a, pa, strict=True) if p] if None not in pa else []
        rb = [s / p for s, p in zip(b, pb, strict=True) if p] if None not in pb else []
        wr = worse(statistics.median(ra), statistics.median(rb), figure) if ra and rb else None
        rows.append((db, figure, _fmt(ma), _fmt(mb), f"{mb / ma:.3f}" if ma else "—",
                     "—" if w is None else f"{w:+.1f} %", f"{_fmt(min(a))}–{_fmt(max(a))}",
                     f"{_fmt(min(b))}–{_fmt(max(b))}", "—" if plain is None else f"{plain:.3f}",
                     "—" if wr is None else f"{wr:+.1f} %"))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    head = (f"A = {a_runs[0]['code']}, B = {b_runs[0]['code']}; {len(a_runs)} + {len(b_runs)} "
            "runs, interleaved; B worse: rates A/B − 1, times, CPU and counts B/A − 1; "
            "vs plain: the same on each run's service/plain ratio (medians)")
    return "\n".join([head, fmt.format(*header), "-" * (sum(widths) + 2 * (len(widths) - 1)),
                      *(fmt.format(*r) for r in rows)])


def run_suite(checkout: Path, suite_args: list[str], out: Path) -> dict:
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python), "bench/suite.py", *suite_args, "--json", str(out),
               "--chart", str(out.with_suffix(".png"))]
    print(f"$ (cd {checkout} && {' '.join(command)})", flush=True)
    subprocess.run(command, cwd=checkout, check=True)
    return json.loads(out.read_text())


def load(directory: Path, side: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob(f"{side}-*.json"))]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    suite_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, suite_args = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, help="checkout A (before)")
    parser.add_argument("--b", type=Path, default=ROOT, help="checkout B (after; default this one)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "ab",
                        help="where each run's JSON goes (default var/bench/ab)")
    parser.add_argument("--analyse", type=Path, metavar="DIR",
                        help="only print the table from the a-*.json, b-*.json in DIR")
    args = parser.parse_args(argv)
    if args.analyse:
        print(table(load(args.analyse, "a"), load(args.analyse, "b")))
        return 0
    if args.a is None:
        parser.error("--a is required (or --analyse DIR)")
    args.out = args.out.resolve()  # each side runs in its own checkout: no relative path
    args.out.mkdir(parents=True, exist_ok=True)
    sides = {"a": args.a.resolve(), "b": args.b.resolve()}
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    started = time.monotonic()
    for i in range(args.rounds):
        for side in ("a", "b") if i % 2 == 0 else ("b", "a"):
            runs[side].append(run_suite(sides[side], suite_args, args.out / f"{side}-{i}.json"))
    print()
    print(table(runs["a"], runs["b"]))
    print(f"({time.monotonic() - started:.0f} s; suite arguments: {' '.join(suite_args)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
