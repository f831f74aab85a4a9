"""Figures of finished jobs, read from the counters and the rows not folded yet.

Every figure the service shows (dashboard chart, ``/metrics``, ``hourly-stats``,
``weekly-report``, ``manage.py queues stats``) comes from here: the counters
(``tasks.upkeep.counters``) hold every run finished before the watermark, the
job rows every run after it, so retention never changes a figure.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Max, Sum
from django.utils import timezone

from tasks.models import DURATION_BOUNDS_S, JobCounter
from tasks.upkeep import counters
from tasks.upkeep.counters import Tally

__all__ = ["WINDOWS", "Tally", "by_queue", "percentile", "series", "summary", "totals"]

#: Chart windows: (span, step) — minutes for a day, hours for a week, days for 90 days.
WINDOWS = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "24h": (timedelta(hours=24), timedelta(minutes=1)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "90d": (timedelta(days=90), timedelta(days=1)),
}
#: How long a chart series is reused (seconds); the chart redraws every 30 s.
CHART_TTL_S = 15
Key = tuple[str, str]  # (queue, job name)


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    stamp = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(stamp, UTC)


def _counter_rows(since: datetime | None, until: datetime, queue: str | None,
                  name: str | None):
    rows = JobCounter.objects.filter(start__lt=until)
    rows = rows.filter(start__gte=since) if since is not None else rows
    if queue:
        rows = rows.filter(queue=queue)
    if name:
        rows = rows.filter(name=name)
    return rows


def _counters(since: datetime | None, until: datetime, queue: str | None, name: str | None):
    return _counter_rows(since, until, queue, name).values(
        "queue", "name", "start", "duration_max", *(c for c in counters._SUMMED))


def _live(since: datetime | None, until: datetime, queue: str | None, name: str | None):
    """Finished rows after the watermark (and in ``[since, until)``)."""
    mark = counters.watermark()
    for row in counters.live_rows(mark):
        finished = row[6]
        if (queue and row[0] != queue) or (name and row[1] != name):
            continue
        if finished >= until or (since is not None and finished < since):
            continue
        yield row


def totals(since: datetime | None = None, until: datetime | None = None,
           queue: str | None = None, name: str | None = None) -> dict[Key, Tally]:
    """``(queue, name) -> Tally`` of runs finished in ``[since, until)`` (all time by default)."""
    until = until or timezone.now() + timedelta(days=1)
    result: dict[Key, Tally] = defaultdict(Tally)
    # Summed by the database: all time is tens of thousands of counter rows (a minute each
    # for a day, an hour each for 90 days, per job name), one row per job name here.
    sums = {f"sum_{column}": Sum(column) for column in counters._SUMMED}
    for counter in (_counter_rows(since, until, queue, name).order_by().values("queue", "name")
                    .annotate(**sums, max_duration=Max("duration_max"))):
        fields = {column: counter[f"sum_{column}"] or 0 for column in counters._SUMMED}
        result[(counter["queue"], counter["name"])].merge(
            Tally.of({**fields, "duration_max": counter["max_duration"] or 0.0}))
    for (row_queue, row_name, _), part in counters.tally(_live(since, until, queue, name)).items():
        result[(row_queue, row_name)].merge(part)
    return dict(result)


def series(window: str, queue: str | None = None, name: str | None = None,
           now: datetime | None = None) -> dict:
    """Completed and failed runs per step over ``window`` (1h, 24h, 7d, 90d), oldest first."""
    span, step = WINDOWS[window]
    now = now or timezone.now()
    end = _floor(now, step) + step
    since = end - span
    key = f"figures:{window}:{queue or '*'}:{name or '*'}:{int(end.timestamp())}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    points: dict[datetime, Tally] = defaultdict(Tally)
    for counter in _counters(since, end, queue, name):
        points[_floor(counter["start"], step)].merge(Tally.of(counter))
    for row in _live(since, end, queue, name):
        points[_floor(row[6], step)].add_row(*row[2:])
    starts = [since + step * i for i in range(int(span / step))]
    result = {
        "window": window, "queue": queue, "name": name, "step_s": int(step.total_seconds()),
        "minutes": [start.isoformat() for start in starts],
        "completed": [points[start].completed if start in points else 0 for start in starts],
        "failed": [points[start].failed if start in points else 0 for start in starts],
    }
    cache.set(key, result, CHART_TTL_S)
    return result


def percentile(tally: Tally, fraction: float) -> float | None:
    """A duration percentile (seconds) from the histogram, interpolated within its bucket."""
    if not tally.runs:
        return None
    wanted = fraction * tally.runs
    seen = 0
    lower = 0.0
    for index, count in enumerate(tally.histogram):
        upper = DURATION_BOUNDS_S[index] if index < len(DURATION_BOUNDS_S) else tally.duration_max
        if count and seen + count >= wanted:
            inside = (wanted - seen) / count
            return min(lower + (max(upper, lower) - lower) * inside, tally.duration_max)
        seen += count
        lower = upper
    return tally.duration_max


def summary(tally: Tally, start: datetime, end: datetime) -> dict:
    """The figures ``hourly-stats`` and ``weekly-report`` store for one queue."""
    finished = tally.completed + tally.failed
    minutes = max((end - start).total_seconds() / 60, 1e-9)
    p95 = percentile(tally, 0.95)
    return {
        "completed": tally.completed,
        "failed": tally.failed,
        "cancelled": tally.cancelled,
        "retried": tally.retried,
        "lost": tally.lost,
        "failure_rate": tally.failed / finished if finished else 0.0,
        "throughput_per_min": tally.completed / minutes,
        "avg_duration_ms": tally.duration_sum / tally.runs * 1000 if tally.runs else None,
        "p95_duration_ms": p95 * 1000 if p95 is not None else None,
    }


def by_queue(since: datetime | None, until: datetime | None = None) -> dict[str, Tally]:
    """``queue -> Tally`` over every job name."""
    result: dict[str, Tally] = defaultdict(Tally)
    for (queue, _), part in totals(since, until).items():
        result[queue].merge(part)
    return dict(result)
