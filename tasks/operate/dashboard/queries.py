"""What the dashboard reads from the job table, shaped to stay fast at millions of rows.

Every query here is bounded by an index range and a LIMIT; counts and ages
come from ``tasks.operate.counts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import CharField, Count, Func, Q, QuerySet
from django.utils import timezone

from tasks.jobs.config import QUEUE_NAMES
from tasks.jobs.states import JobState
from tasks.models import Job

#: How long the per-minute chart series are reused (seconds); the chart redraws every 30 s.
CHART_TTL_S = 15
CHART_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
PAGE_SIZE = 50


def duration_text(seconds: float | None) -> str:
    """``"3h 05m"``, ``"4m 12s"``, ``"9s"``; empty for None."""
    if seconds is None:
        return ""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class MinuteKey(Func):
    """``'YYYY-MM-DD HH:MM'`` (UTC) of a datetime column, computed natively by the database.

    Django's ``TruncMinute`` calls a Python function per row on SQLite; a
    substring of the stored ISO text does the same work in C.
    """

    function = "SUBSTR"
    template = "SUBSTR(%(expressions)s, 1, 16)"
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection,
                           template="to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')",
                           **extra)


def _minute_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def throughput(window: str, queue: str | None = None, now: datetime | None = None) -> dict:
    """Completed and failed jobs per minute over ``window`` (``1h`` or ``24h``), oldest first."""
    span = CHART_WINDOWS[window]
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    key = f"dashboard:chart:{window}:{queue or 'all'}:{now:%Y%m%d%H%M}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    since = now - span + timedelta(minutes=1)
    rows = (
        Job.objects.filter(queue__in=[queue] if queue else QUEUE_NAMES,
                           state__in=[JobState.COMPLETED, JobState.FAILED], finished_at__gte=since)
        .annotate(minute=MinuteKey("finished_at"))
        .values("minute", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    per_minute = {(row["minute"], row["state"]): row["n"] for row in rows}
    minutes = [since + timedelta(minutes=i) for i in range(int(span.total_seconds() // 60))]
    keys = [_minute_key(m) for m in minutes]
    series = {
        "window": window,
        "queue": queue,
        "minutes": [m.isoformat() for m in minutes],
        "completed": [per_minute.get((k, JobState.COMPLETED.value), 0) for k in keys],
        "failed": [per_minute.get((k, JobState.FAILED.value), 0) for k in keys],
    }
    cache.set(key, series, CHART_TTL_S)
    return series


@dataclass(frozen=True)
class JobFilter:
    """Filters of a listing; empty values filter nothing."""

    name: str = ""
    priority: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str = ""

    @property
    def active(self) -> bool:
        return bool(self.name or self.priority or self.created_from or self.created_to
                    or self.search)

    def apply(self, qs: QuerySet) -> QuerySet:
        if self.name:
            qs = qs.filter(name=self.name)
        if self.priority:
            qs = qs.filter(priority=self.priority)
        if self.created_from:
            qs = qs.filter(created_at__gte=self.created_from)
        if self.created_to:
            qs = qs.filter(created_at__lt=self.created_to)
        if self.search:
            qs = qs.filter(Q(pk=self.search) | Q(pk__icontains=self.search)
                           | Q(data__icontains=self.search))
        return qs


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    newer: str | None  # cursor for the previous (newer) page
    older: str | None  # cursor for the next (older) page


def _cursor(job: Job) -> str:
    return f"{job.created_at.isoformat()}|{job.pk}"


def _parse_cursor(cursor: str) -> tuple[datetime, str] | None:
    moment, sep, pk = cursor.partition("|")
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return None
    return (parsed, pk) if sep else None


def job_page(queue: str, state: str, filters: JobFilter, before: str = "", after: str = "",
             size: int = PAGE_SIZE) -> Page:
    """Newest first, by keyset (no OFFSET, no COUNT): any page costs one index range read."""
    qs = filters.apply(Job.objects.filter(queue=queue, state=state)).defer(
        "data", "result", "errors", "backoff")
    older_than = _parse_cursor(before) if before else None
    newer_than = _parse_cursor(after) if after else None
    if newer_than:
        moment, pk = newer_than
        qs = qs.filter(Q(created_at__gt=moment) | Q(created_at=moment, pk__gt=pk))
        rows = list(qs.order_by("created_at", "pk")[: size + 1])
        more_newer = len(rows) > size
        jobs = list(reversed(rows[:size]))
        return Page(jobs, _cursor(jobs[0]) if more_newer and jobs else None,
                    _cursor(jobs[-1]) if jobs else None)
    if older_than:
        moment, pk = older_than
        qs = qs.filter(Q(created_at__lt=moment) | Q(created_at=moment, pk__lt=pk))
    rows = list(qs.order_by("-created_at", "-pk")[: size + 1])
    jobs = rows[:size]
    newer = _cursor(jobs[0]) if older_than and jobs else None
    older = _cursor(jobs[-1]) if len(rows) > size else None
    return Page(jobs, newer, older)
