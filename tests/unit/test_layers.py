"""The layout of ``tasks/``: one folder per layer, imports running downward only.

Every ``import`` in every module (function-level ones included) is read from
the source, so a lazy upward import fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TASKS = Path(__file__).resolve().parents[2] / "tasks"

#: Layer of each part of the app, lowest first. A module may import its own
#: layer and lower ones. Django's own files other than ``models`` sit on top.
RANKS = {
    "tasks.jobs": 0,
    "tasks.models": 1,
    "tasks.fastpath": 2,
    "tasks.services": 2,
    "tasks.enqueue": 3,
    "tasks.worker": 4,
    "tasks.upkeep": 5,
    "tasks.operate": 6,
    "tasks.integrations": 7,
    "tasks.processors": 8,
}
TOP = 9
#: Django's own files (and the one public import) at the app root.
ROOT_FILES = {"__init__", "apps", "models", "admin", "urls", "views", "forms", "checks", "queues"}
ROOT_DIRS = {"migrations", "management", "templates", "static"}


def _module(path: Path) -> str:
    parts = path.relative_to(TASKS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rank(module: str) -> int:
    for prefix, rank in RANKS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return TOP


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tasks":  # ``from tasks import x``: x is the module
                found += [(node.lineno, f"tasks.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name == "tasks" or name.startswith("tasks.")]


MODULES = sorted(p for p in TASKS.rglob("*.py") if "migrations" not in p.parts)


def test_no_service_module_sits_at_the_app_root():
    loose = sorted(p.stem for p in TASKS.glob("*.py") if p.stem not in ROOT_FILES)
    dirs = sorted(p.name for p in TASKS.iterdir() if p.is_dir() and p.name != "__pycache__"
                  and p.name not in ROOT_DIRS and f"tasks.{p.name}" not in RANKS)
    assert loose == [] and dirs == [], "move these into a layer folder: " + ", ".join(loose + dirs)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TASKS)))
def test_imports_run_downward(path: Path):
    here = _module(path)
    upward = [f"line {line}: {name} (layer {_rank(name)} > {_rank(here)})"
              for line, name in _imports(path) if _rank(name) > _rank(here)]
    assert upward == [], f"{here} imports a higher layer: " + "; ".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path: Path):
    """The reader sees function-level and ``from tasks import x`` imports alike."""
    module = tmp_path / "sample.py"
    module.write_text("def f():\n    from tasks import actions\n    import tasks.worker.task\n")
    assert [name for _, name in _imports(module)] == ["tasks.actions", "tasks.worker.task"]
    assert _rank("tasks.operate.actions") > _rank("tasks.enqueue.api")
