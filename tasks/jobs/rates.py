"""Rate limits as written in config and on the dashboard: ``"100/min"``, ``"10/s"``, ``"5000/h"``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.jobs.errors import InvalidRateError

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600}
#: Most jobs a limit may allow per window: beyond it, no limit is the honest setting.
MAX_JOBS = 1_000_000


@dataclass(frozen=True)
class Rate:
    """At most ``jobs`` started per ``per_s``-second window, across every worker."""

    jobs: int
    per_s: int

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h"}[self.per_s]
        return f"{self.jobs}/{unit}"


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text or "") if isinstance(text, str) else None
    if not match or not 1 <= int(match.group(1)) <= MAX_JOBS:
        raise InvalidRateError(text)
    return Rate(int(match.group(1)), _PER_S[match.group(2)])
