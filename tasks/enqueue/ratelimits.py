"""Global rate limits: which queues and job names have one now.

A limit holds across every worker on every host because workers never see
the jobs over it: a job of a limited queue or job name is written as a due
*delayed* row instead of being published, and the active promoter publishes
at most the limit's number of them per window (``tasks.upkeep.promoter``,
slots in ``RateWindow``). Jobs over the limit wait as rows, not in a worker.

The limits come from the queue config (``QueuePreset.rate_limit`` and
``job_rate_limits``) overridden by ``RateLimit`` rows the dashboard writes;
every process rereads them within ``REFRESH_S``, so a change needs no restart.
"""

from __future__ import annotations

from django.core.cache import cache

from tasks.jobs.config import QUEUE_PRESETS
from tasks.jobs.rates import Rate, parse_rate

#: How long a process reuses what it read (seconds).
REFRESH_S = 2.0
_CACHE_KEY = "ratelimits:current"
#: A limit's key: (queue, job name), the name empty for the whole queue.
Key = tuple[str, str]


def configured() -> dict[Key, Rate]:
    """The limits of the queue config."""
    limits: dict[Key, Rate] = {}
    for queue, preset in QUEUE_PRESETS.items():
        if preset.rate_limit:
            limits[(queue.value, "")] = parse_rate(preset.rate_limit)
        for name, rate in preset.job_rate_limits.items():
            limits[(queue.value, name)] = parse_rate(rate)
    return limits


def current() -> dict[Key, Rate]:
    """The limits in force: the config's, overridden by the dashboard's (reread every 2 s)."""
    cached = cache.get(_CACHE_KEY)
    if cached is not None:
        return cached
    from tasks.models import RateLimit

    limits = configured()
    for queue, name, rate in RateLimit.objects.values_list("queue", "name", "rate"):
        if rate:
            limits[(queue, name)] = parse_rate(rate)
        else:
            limits.pop((queue, name), None)
    cache.set(_CACHE_KEY, limits, REFRESH_S)
    return limits


def forget() -> None:
    """Make this process reread the limits now (after a change)."""
    cache.delete(_CACHE_KEY)


def keys_of(queue: str, name: str, limits: dict[Key, Rate]) -> list[Key]:
    """The limits a job of ``queue``/``name`` is subject to."""
    return [key for key in ((queue, ""), (queue, name)) if key in limits]


def limited(queue: str, name: str) -> bool:
    """True when jobs of ``queue``/``name`` go through the promoter's rate gate."""
    limits = current()
    return bool(limits) and bool(keys_of(queue, name, limits))
