"""Unique jobs and debounce: a window per key, kept apart from the job rows.

``unique_for``: while the window lasts, an add with the same key returns the
first job's id and adds nothing. ``debounce``: the job waits that long as a
delayed row; an add with the same key before it starts replaces its data
(and options) and moves its start again. The key is the queue, the job name
and either the caller's ``unique_key`` or, by default, the data (unique) or
nothing more (debounce: one pending job per job name). Windows live in their
own table (``tasks.models.JobWindow``), so retention deleting a job row does
not end one early; ``tasks.enqueue.windows`` opens and finds them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tasks.jobs.errors import InvalidWindowError
from tasks.jobs.limits import MAX_DELAY_MS, MAX_JOB_ID_CHARS

UNIQUE = "unique"
DEBOUNCE = "debounce"


@dataclass(frozen=True)
class Window:
    """A validated ``unique_for`` or ``debounce`` request."""

    kind: str  # UNIQUE or DEBOUNCE
    seconds: float
    key: str = ""  # the caller's unique_key; "" for the default

    def digest(self, queue: str, name: str, data: dict) -> str:
        """The window's primary key: SHA-256 of kind, queue, name and key (or canonical data)."""
        if self.key:
            material = "key:" + self.key
        elif self.kind == UNIQUE:
            material = "data:" + canonical_json(data)
        else:
            material = ""
        text = "\x00".join((self.kind, queue, name, material))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def canonical_json(data: Any) -> str:
    """One text per value whatever the key order: ``{"a":1,"b":2}`` == ``{"b":2,"a":1}``."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _duration_s(value: Any, option: str) -> float:
    why = f"give milliseconds (or a timedelta) above 0 and up to {MAX_DELAY_MS} (a year)"
    if isinstance(value, timedelta):
        ms = value / timedelta(milliseconds=1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = value
    else:
        raise InvalidWindowError(option, value, why)
    if not (math.isfinite(ms) and 0 < ms <= MAX_DELAY_MS):
        raise InvalidWindowError(option, value, why)
    return ms / 1000


def parse_window(unique_for: Any = None, debounce: Any = None, unique_key: Any = None, *,
                 delay: Any = None, job_id: Any = None) -> Window | None:
    """The window an add asks for, or None; ``InvalidWindowError`` naming what conflicts."""
    if unique_for is None and debounce is None:
        if unique_key is not None:
            raise InvalidWindowError("unique_key", unique_key,
                                     "it names a unique_for or debounce window; give one")
        return None
    if unique_for is not None and debounce is not None:
        raise InvalidWindowError("debounce", debounce, "give unique_for or debounce, not both")
    if unique_key is not None and not (
            isinstance(unique_key, str) and 0 < len(unique_key) <= MAX_JOB_ID_CHARS
            and unique_key.isprintable()):
        raise InvalidWindowError("unique_key", unique_key,
                                 f"give 1 to {MAX_JOB_ID_CHARS} printable characters")
    key = unique_key or ""
    if unique_for is not None:
        return Window(UNIQUE, _duration_s(unique_for, "unique_for"), key)
    if delay is not None:
        raise InvalidWindowError("debounce", debounce,
                                 "it sets the job's start (now + debounce); do not give delay too")
    if job_id is not None:
        raise InvalidWindowError("debounce", debounce,
                                 "each window adds a job of its own; name the window with "
                                 "unique_key, not job_id")
    return Window(DEBOUNCE, _duration_s(debounce, "debounce"), key)
