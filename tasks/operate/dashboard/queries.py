"""What the dashboard reads from the job table, shaped to stay fast at millions of rows.

Every query here is bounded by an index range and a LIMIT; counts and ages
come from ``tasks.operate.counts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from tasks.models import Job

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
