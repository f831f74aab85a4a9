"""Counts per queue and state, and how long the oldest job has waited.

Read by the dashboard, the health check, ``/metrics`` and ``manage.py queues``.
Counts are exact up to ``COUNT_CAP`` (a LIMITed index scan per queue and
state); a state above it is counted in full at most once per
``BIG_COUNT_TTL_S`` and served from the cache meanwhile, marked as
approximate, so no request counts a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from tasks.jobs.config import JobPriority
from tasks.jobs.states import ALL_STATES
from tasks.models import Job

#: Counted exactly on every request up to this many rows per queue and state.
COUNT_CAP = 10_000
#: How long a full count of a state above the cap is reused (seconds).
BIG_COUNT_TTL_S = 60

@dataclass(frozen=True)
class StateCount:
    """A count that is exact, or a cached full count of a large state (``exact=False``)."""

    value: int
    exact: bool = True

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"≈{self.value:,}"

    def as_json(self) -> dict:
        return {"value": self.value, "exact": self.exact, "text": str(self)}


def state_count(queue: str, state: str) -> StateCount:
    key = f"dashboard:count:{queue}:{state}"
    cached = cache.get(key)
    if cached is not None:  # known to be above the cap: reuse the full count
        return StateCount(cached, exact=False)
    qs = Job.objects.filter(queue=queue, state=state).order_by()
    capped = qs.values("pk")[: COUNT_CAP + 1].count()
    if capped <= COUNT_CAP:
        return StateCount(capped)
    value = qs.count()
    cache.set(key, value, BIG_COUNT_TTL_S)
    return StateCount(value, exact=False)


def queue_counts(queue: str) -> dict[str, StateCount]:
    return {state: state_count(queue, state) for state in ALL_STATES}


def oldest_waiting(queue: str) -> datetime | None:
    """When the longest-waiting job of ``queue`` became waiting (``enqueued_at``).

    One index seek per priority on ``job_waiting_ahead`` (queue, priority,
    enqueued_at; waiting rows only), never a read of the backlog: one ``MIN``
    over the queue cannot use an index led by priority. Every path that makes
    a job waiting stamps ``enqueued_at``.
    """
    firsts = (Job.objects.waiting(queue).filter(priority=int(priority), enqueued_at__isnull=False)
              .order_by("enqueued_at").values_list("enqueued_at", flat=True).first()
              for priority in JobPriority)
    return min((first for first in firsts if first is not None), default=None)


def age_seconds(moment: datetime | None, now: datetime | None = None) -> float | None:
    if moment is None:
        return None
    return max(((now or timezone.now()) - moment).total_seconds(), 0.0)
