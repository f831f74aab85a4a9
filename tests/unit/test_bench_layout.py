"""The benchmark's layout: what worker processes load never imports the driver.

Worker processes load ``bench.service_app`` / ``bench.plain_app``, and those
import the instrumentation in ``bench/instrument/``. The driver (the suite,
its child, the scenarios) imports the instrumentation, never the reverse, so
there is no import cycle and a worker never loads driver code (issue 12,
item 6). Every ``import`` is read from the source, function-level ones
included, so a lazy import of the driver fails here as a top-level one does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

#: The driver: modules that start processes, run scenarios and report.
DRIVER = ("harness", "suite", "report", "context", "throughput", "latency", "delayed",
          "priority", "retention", "child", "steps", "fastpaths", "ab", "bigtable", "bullmq",
          "chart")
#: What a worker process loads from ``bench``: the two apps and the instrumentation.
WORKER_SIDE = sorted([BENCH / "service_app.py", BENCH / "plain_app.py",
                      *(BENCH / "instrument").glob("*.py")])


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``path`` (a module under ``root``);
    ``from bench import x`` gives ``bench`` and ``bench.x``, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return found


def _driver_imports(path: Path, root: Path = BENCH.parent) -> list[str]:
    """The driver modules ``path`` imports (``bench.steps`` is the driver's, not
    ``bench.instrument.steps``)."""
    hits = []
    for line, name in _imports(path, root):
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "bench" and parts[1] in DRIVER:
            hits.append(f"line {line}: {name}")
    return sorted(set(hits))


def test_the_worker_side_is_all_there():
    names = {p.relative_to(BENCH).as_posix() for p in WORKER_SIDE}
    assert {"service_app.py", "plain_app.py", "instrument/__init__.py", "instrument/keys.py",
            "instrument/probes.py", "instrument/profiling.py", "instrument/steps.py"} <= names


def test_the_driver_modules_named_exist():
    """A renamed driver module would otherwise slip out of the check."""
    missing = [name for name in DRIVER if not (BENCH / f"{name}.py").exists()]
    assert missing == []


@pytest.mark.parametrize("path", WORKER_SIDE, ids=lambda p: p.relative_to(BENCH).as_posix())
def test_worker_side_imports_no_driver_module(path: Path):
    hits = _driver_imports(path)
    assert hits == [], f"{path.relative_to(BENCH)} imports the benchmark driver: " + "; ".join(hits)


def test_the_rule_catches_driver_imports(tmp_path: Path):
    """Top-level, function-level, ``from bench import x`` and relative imports alike."""
    package = tmp_path / "bench" / "instrument"
    package.mkdir(parents=True)
    module = package / "sample.py"
    module.write_text(
        "from bench.harness import COUNTER_KEY\n"
        "def f():\n"
        "    from bench import context\n"
        "    import bench.suite\n"
        "    from .. import report\n"
        "    from ..child import main\n"
        "    from bench.instrument import steps\n"
        "    from . import keys\n"
    )
    hits = _driver_imports(module, tmp_path)
    assert sorted(hit.split(": ")[1] for hit in hits) == [
        "bench.child", "bench.child.main", "bench.context", "bench.harness",
        "bench.harness.COUNTER_KEY", "bench.report", "bench.suite",
    ]
