"""The quarantine's bookkeeping: which fast paths exist, which are on here, and why not.

A fast path is code that makes a hot path cheaper by relying on something
Celery, kombu or billiard do not promise (a private attribute, a message
layout). Each one names the versions it was written for and checks, when it
is installed, that what it relies on is there. On any mismatch, or when it
raises where it should not, it is turned off for the process: the stock
Celery/kombu path runs instead, one WARNING names it and why, and
``/queues/health`` reports ``degraded``. ``JOB_FASTPATH`` chooses which may run.

The state lives on the Celery app object (``fastpaths(app)``), the one
global the service keeps besides Django's settings.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("tasks.fastpath")

ON = "on"
#: Prefix of the state of a fast path turned off because upstream is not as it assumes.
FALLBACK = "fallback: "


@dataclass(frozen=True)
class FastPath:
    """One fast path: its name, the scenario it exists for, and what it was written against."""

    name: str
    scenario: str
    written_for: tuple[tuple[str, str], ...]
    #: Why upstream does not look as assumed (a missing attribute, another signature), or None.
    probe: Callable[[], str | None]

    def mismatch(self) -> str | None:
        """The first difference from the versions and shapes it was written for, or None."""
        for distribution, version in self.written_for:
            found = importlib.metadata.version(distribution)
            if found != version:
                return f"written for {distribution} {version}, found {found}"
        return self.probe()


@dataclass
class Fastpaths:
    """Each fast path's state in this process: ``on``, ``off (…)`` or ``fallback: …``."""

    wanted: frozenset[str]
    state: dict[str, str] = field(default_factory=dict)
    installed: set[str] = field(default_factory=set)  # install steps done in this process
    cache: dict = field(default_factory=dict)  # what a fast path keeps across calls

    def on(self, name: str) -> bool:
        return self.state.get(name) == ON

    def settle(self, path: FastPath, applies: bool = True, why_not: str = "") -> bool:
        """Decide once whether ``path`` runs here; True when it is on."""
        if path.name in self.state:
            return self.on(path.name)
        if path.name not in self.wanted:
            self.state[path.name] = "off (by configuration)"
        elif not applies:
            self.state[path.name] = f"off ({why_not})"
        else:
            problem = path.mismatch()
            if problem:
                self.fall_back(path.name, problem)
            else:
                self.state[path.name] = ON
        return self.on(path.name)

    def fall_back(self, name: str, reason: str) -> None:
        """Turn ``name`` off for this process with one WARNING; the stock path runs instead."""
        if self.state.get(name, "").startswith(FALLBACK):
            return
        self.state[name] = FALLBACK + reason
        logger.warning("fast path %s is off, the stock Celery/kombu path runs instead: %s",
                       name, reason)

    def fallbacks(self) -> dict[str, str]:
        """The fast paths that fell back, with why."""
        return {name: state[len(FALLBACK):] for name, state in self.state.items()
                if state.startswith(FALLBACK)}


def wanted_from(setting: str, names: list[str]) -> frozenset[str]:
    """``JOB_FASTPATH``: ``on`` (all), ``off`` (none) or a comma list of the names to keep on."""
    value = (setting or "on").strip().lower()
    if value in ("on", "true", "1", "yes"):
        return frozenset(names)
    if value in ("off", "false", "0", "no"):
        return frozenset()
    chosen = {part.strip() for part in value.split(",") if part.strip()}
    unknown = chosen - set(names)
    if unknown:
        raise ValueError(f"JOB_FASTPATH names unknown fast paths {sorted(unknown)}; "
                         f"known: {', '.join(names)} (or on/off)")
    return frozenset(chosen)


_ATTR = "intelgraph_fastpaths"


def fastpaths_of(app: Any, names: list[str]) -> Fastpaths:
    """The app's ``Fastpaths``, made on first use from ``settings.JOB_FASTPATH``."""
    paths = app.__dict__.get(_ATTR)
    if paths is None:
        from django.conf import settings

        paths = Fastpaths(wanted_from(getattr(settings, "JOB_FASTPATH", "on"), names))
        app.__dict__[_ATTR] = paths
    return paths


def has_attributes(owner: Any, *names: str) -> str | None:
    """None when ``owner`` has every attribute; else which one is missing."""
    for name in names:
        if not hasattr(owner, name):
            return f"{getattr(owner, '__qualname__', owner)}.{name} is gone"
    return None
