"""Backoff strategies: pure functions from attempts made to a delay in ms."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from tasks.jobs.config import Backoff
from tasks.jobs.errors import InvalidBackoffError
from tasks.jobs.limits import MAX_BACKOFF_MS
from tasks.jobs.text import short_repr

BACKOFF_TYPES = ("exponential", "fixed", "custom")

#: A task's own strategy: attempts made so far (>= 1) -> delay in milliseconds.
CustomStrategy = Callable[[int], float]


def exponential_ms(attempts_made: int, base_ms: int, cap_ms: int) -> int:
    """``base · 2^(attempts−1)``: 2 s, 4 s, 8 s … for a 2000 ms base, capped."""
    exponent = max(attempts_made - 1, 0)
    return int(min(base_ms * (2**min(exponent, 40)), cap_ms))


def fixed_ms(base_ms: int) -> int:
    return int(base_ms)


def with_jitter(delay_ms: int, jitter: float, rng: random.Random | None = None) -> int:
    """Spread a delay over ``[delay·(1−jitter), delay]`` so retries do not stampede."""
    if jitter <= 0:
        return delay_ms
    rng = rng or random.Random()
    return int(delay_ms * (1 - jitter * rng.random()))


def next_delay_ms(
    backoff: Mapping[str, Any],
    attempts_made: int,
    custom: CustomStrategy | None = None,
    rng: random.Random | None = None,
) -> int:
    """The wait before the next attempt after ``attempts_made`` attempts failed.

    Never more than ``MAX_BACKOFF_MS``: rows written before the bounds (or a
    custom strategy) may hold larger numbers, which would overflow the
    ``timedelta`` of the retry. A value that is not a finite number raises
    ``InvalidBackoffError`` (the worker records it with the job's error).
    """
    kind = backoff.get("type", "exponential")
    base = _stored_ms(backoff, "delay", 2000)
    cap = _stored_ms(backoff, "max_delay", 60 * 60 * 1000)
    if kind == "exponential":
        delay = exponential_ms(attempts_made, base, cap)
    elif kind == "fixed":
        delay = fixed_ms(base)
    elif kind == "custom":
        if custom is None:
            raise InvalidBackoffError(dict(backoff), "the task declares no custom strategy")
        wanted = custom(attempts_made)
        if not _is_number(wanted):
            raise InvalidBackoffError(dict(backoff), f"the custom strategy returned {short_repr(wanted)}, "
                                      "not a finite number of milliseconds")
        delay = int(min(max(wanted, 0), MAX_BACKOFF_MS))
    else:
        raise InvalidBackoffError(dict(backoff), f"type must be one of {BACKOFF_TYPES}")
    jitter = backoff.get("jitter", 0.0)
    if not _is_number(jitter) or not 0 <= jitter <= 1:
        raise InvalidBackoffError(dict(backoff), "jitter must be between 0 and 1")
    return min(with_jitter(delay, float(jitter), rng), MAX_BACKOFF_MS)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _stored_ms(backoff: Mapping[str, Any], key: str, default: int) -> int:
    value = backoff.get(key, default)
    if not _is_number(value) or value < 0:
        raise InvalidBackoffError(dict(backoff), f"{key} must be milliseconds >= 0")
    return int(min(value, MAX_BACKOFF_MS))


def parse_backoff(value: Any, default: Backoff) -> dict:
    """Validate a user's backoff (dict, ``Backoff``, or None) into its stored form."""
    if value is None:
        return default.as_dict()
    if isinstance(value, Backoff):
        value = value.as_dict()
    if not isinstance(value, Mapping):
        raise InvalidBackoffError(value, "give a dict like {'type': 'exponential', 'delay': 2000}")
    kind = value.get("type", default.type)
    if kind not in BACKOFF_TYPES:
        raise InvalidBackoffError(dict(value), f"type must be one of {', '.join(BACKOFF_TYPES)}")
    delay = value.get("delay", default.delay_ms)
    if not _is_number(delay) or not 0 <= delay <= MAX_BACKOFF_MS:
        raise InvalidBackoffError(
            dict(value), f"delay must be milliseconds from 0 to {MAX_BACKOFF_MS} (one day)")
    max_delay = value.get("max_delay", default.max_delay_ms)
    if not _is_number(max_delay) or not 0 <= max_delay <= MAX_BACKOFF_MS:
        raise InvalidBackoffError(
            dict(value), f"max_delay must be milliseconds from 0 to {MAX_BACKOFF_MS} (one day)")
    jitter = value.get("jitter", default.jitter)
    if not _is_number(jitter) or not 0 <= jitter <= 1:
        raise InvalidBackoffError(dict(value), "jitter must be between 0 and 1")
    unknown = set(value) - {"type", "delay", "max_delay", "jitter"}
    if unknown:
        raise InvalidBackoffError(dict(value), f"unknown keys {sorted(unknown)}")
    return {"type": kind, "delay": int(delay), "max_delay": int(max_delay), "jitter": jitter}
