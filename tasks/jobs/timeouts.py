"""Per-job time limits: ``timeout`` (hard) and ``soft_timeout``, in milliseconds or a timedelta.

Celery enforces time limits in the prefork pool from the ``timelimit`` header
of each message, ``[hard, soft]`` in seconds; a message without one gets its
task's (the queue preset's, or the processor's own). The row keeps what the
caller gave (``Job.timeout_ms``, ``Job.soft_timeout_ms``) so every publish of
the job, first or re-published, carries the same header (``header_limits``).

- ``timeout`` alone: the job is stopped at that time, with no soft warning
  before it (the header's soft limit is the same value: without one the
  task's own soft limit, perhaps shorter, would fire first).
- ``soft_timeout`` alone: ``JobTimeoutError`` is raised inside the processor
  then; the hard limit stays the task's, and must be longer.
- both: the soft one first, the hard one later.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings

from tasks.jobs.errors import InvalidTimeoutError
from tasks.jobs.limits import MIN_TIMEOUT_MS


def max_timeout_ms() -> int:
    """Longest limit: one second below the broker's visibility timeout (see ``limits``)."""
    return (int(getattr(settings, "BROKER_VISIBILITY_TIMEOUT_S", 3600)) - 1) * 1000


def parse_timeout(value: Any, option: str) -> int | None:
    """Milliseconds of a limit given in ms or as a timedelta; None when not given."""
    if value is None:
        return None
    longest = max_timeout_ms()
    why = (f"give milliseconds (or a timedelta) from {MIN_TIMEOUT_MS} to {longest}, below "
           "the broker's visibility timeout (BROKER_VISIBILITY_TIMEOUT)")
    if isinstance(value, timedelta):
        ms = value / timedelta(milliseconds=1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = value
    else:
        raise InvalidTimeoutError(option, value, why)
    if not (math.isfinite(ms) and MIN_TIMEOUT_MS <= ms <= longest):
        raise InvalidTimeoutError(option, value, why)
    return int(ms)


def parse_limits(timeout: Any, soft_timeout: Any,
                 task_time_limit_s: float | None = None) -> tuple[int | None, int | None]:
    """(hard ms, soft ms) as the row keeps them; the soft one must end first.

    ``task_time_limit_s``: the hard limit the job's task has without one of its own,
    which a ``soft_timeout`` given alone must stay below.
    """
    hard = parse_timeout(timeout, "timeout")
    soft = parse_timeout(soft_timeout, "soft_timeout")
    if soft is not None:
        if hard is not None and soft >= hard:
            raise InvalidTimeoutError("soft_timeout", soft_timeout,
                                      f"it must end before timeout ({hard} ms)")
        if hard is None and task_time_limit_s and soft >= task_time_limit_s * 1000:
            raise InvalidTimeoutError(
                "soft_timeout", soft_timeout,
                f"it must end before the job's hard time limit ({task_time_limit_s:g} s, its "
                "queue's or processor's); give timeout= too")
    return hard, soft


def header_limits(timeout_ms: int | None,
                  soft_timeout_ms: int | None) -> tuple[float | None, float | None] | None:
    """Celery's ``timelimit`` header ``(hard s, soft s)`` for a row's limits; None: the task's."""
    if timeout_ms is None and soft_timeout_ms is None:
        return None
    hard = timeout_ms / 1000 if timeout_ms is not None else None
    soft = soft_timeout_ms / 1000 if soft_timeout_ms is not None else hard
    return hard, soft


def describe_ms(ms: float) -> str:
    """``1500`` -> ``1,500 ms``: the unit the caller gave the limit in."""
    return f"{ms:,.0f} ms"
