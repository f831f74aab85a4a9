"""Counters of finished jobs that retention cannot touch: folded from the rows, never from the hot path.

A job's row is the record of its outcome until it is deleted. Figures (the
dashboard chart, ``/metrics``, ``hourly-stats``, ``weekly-report``) must
outlive that, so finished rows are folded into ``JobCounter`` per queue, job
name and minute:

- the promoter holding the lease folds the rows that finished before
  ``now - FOLD_LAG`` and moves the watermark (``CounterWatermark``) there,
  in one transaction;
- a deletion folds the rows it deletes that finished after the watermark,
  in the transaction that deletes them (``fold_deleted``).

So each finished run is counted exactly once, in the counters or live from
its row (``live_rows``), whatever is killed when: nothing is written on the
completion path, and nothing is lost. Minutes are rolled up into hours after
``JOB_COUNTERS_MINUTES_FOR``, and hours older than ``JOB_COUNTERS_KEEP_DAYS``
into one all-time ``total`` row per queue and job name, so all-time counts
never decrease. Retries and lost runs are counted in the minute the job
finished.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tasks.jobs.states import FINISHED_STATES, JobState
from tasks.models import DURATION_BOUNDS_S, HISTOGRAM_COLUMNS, CounterWatermark, Job, JobCounter

#: Rows are folded once they finished this long ago: a worker's completion is
#: committed well within it, so no row lands behind the watermark.
FOLD_LAG = timedelta(seconds=30)
#: The all-time rows' start.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: The job columns a fold reads.
COLUMNS = ("queue", "name", "state", "attempts_made", "lost_count", "started_at", "finished_at")
_SUMMED = ("completed", "failed", "cancelled", "retried", "lost", "runs", "duration_sum",
           *HISTOGRAM_COLUMNS)


@dataclass
class Tally:
    """Figures of one queue, job name and period, before they are written (or as read)."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    lost: int = 0
    runs: int = 0
    duration_sum: float = 0.0
    duration_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_COLUMNS))

    def add_row(self, state: str, attempts: int, lost: int, started: datetime | None,
                finished: datetime | None) -> None:
        if state == JobState.COMPLETED:
            self.completed += 1
        elif state == JobState.FAILED:
            self.failed += 1
        elif state == JobState.CANCELLED:
            self.cancelled += 1
        self.retried += max(attempts - 1, 0)
        self.lost += lost
        if started is not None and finished is not None and state != JobState.CANCELLED:
            seconds = max((finished - started).total_seconds(), 0.0)
            self.runs += 1
            self.duration_sum += seconds
            self.duration_max = max(self.duration_max, seconds)
            self.histogram[bisect.bisect_left(DURATION_BOUNDS_S, seconds)] += 1

    def merge(self, other: Tally) -> None:
        for name in ("completed", "failed", "cancelled", "retried", "lost", "runs",
                     "duration_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duration_max = max(self.duration_max, other.duration_max)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]

    @classmethod
    def of(cls, counter: dict) -> Tally:
        return cls(**{name: counter[name] for name in _SUMMED if not name.startswith("h")},
                   duration_max=counter["duration_max"],
                   histogram=[counter[column] for column in HISTOGRAM_COLUMNS])


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def tally(rows: Iterable[tuple], period=minute_of) -> dict[tuple[str, str, datetime], Tally]:
    """``(queue, name, period start) -> Tally`` of job rows given as ``COLUMNS`` tuples."""
    tallies: dict[tuple[str, str, datetime], Tally] = defaultdict(Tally)
    for queue, name, state, attempts, lost, started, finished in rows:
        if finished is None or state not in FINISHED_STATES:
            continue
        tallies[(queue, name, period(finished))].add_row(state, attempts, lost, started,
                                                         finished)
    return tallies


def watermark() -> datetime:
    """Rows finished before this are in the counters (made on first use)."""
    mark = CounterWatermark.objects.filter(pk=1).values_list("folded_until", flat=True).first()
    if mark is None:
        CounterWatermark.objects.get_or_create(pk=1, defaults={"folded_until": EPOCH})
        return EPOCH
    return mark


def fold(now: datetime | None = None) -> int:
    """Fold the rows that finished since the watermark (up to ``now - FOLD_LAG``); how many."""
    until = (now or timezone.now()) - FOLD_LAG
    with transaction.atomic():
        CounterWatermark.objects.get_or_create(pk=1, defaults={"folded_until": EPOCH})
        since = CounterWatermark.objects.select_for_update().get(pk=1).folded_until
        if since >= until:
            return 0
        # Streamed: a backlog of millions of rows (a promoter down for a day) costs the
        # tallies' memory (per queue, name and minute), not the rows'.
        seen = [0]

        def counted(rows: Iterable[tuple]) -> Iterable[tuple]:
            for row in rows:
                seen[0] += 1
                yield row

        add(tally(counted(finished_between(since, until))))
        CounterWatermark.objects.filter(pk=1).update(folded_until=until)
    return seen[0]


def finished_between(since: datetime, until: datetime) -> Iterable[tuple]:
    """Finished rows with ``since <= finished_at < until``, by the index of finished jobs."""
    from tasks.jobs.config import QUEUE_NAMES

    return (Job.objects.filter(queue__in=QUEUE_NAMES, state__in=FINISHED_STATES,
                               finished_at__gte=since, finished_at__lt=until)
            .values_list(*COLUMNS).iterator(chunk_size=5000))


def live_rows(since: datetime) -> Iterable[tuple]:
    """Finished rows not folded yet (after the watermark ``since``)."""
    return finished_between(since, timezone.now() + timedelta(days=1))


def fold_deleted(rows: Iterable[tuple], mark: datetime | None = None) -> None:
    """Deleted rows (``COLUMNS``) that finished after the watermark: into the counters now.

    Called in the transaction that deletes them; rows before the watermark
    are counted already.
    """
    mark = watermark() if mark is None else mark
    add(tally(row for row in rows if row[6] is not None and row[6] >= mark))


def add(tallies: dict[tuple[str, str, datetime], Tally], span: str = JobCounter.Span.MINUTE) -> None:
    """Add tallies to their counters: one upsert each, safe with concurrent writers."""
    if not tallies:
        return
    sql = _upsert_sql(connection.vendor)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for (queue, name, start), t in tallies.items():
            cursor.execute(sql, [queue, name, span, adapt(start), t.completed, t.failed,
                                 t.cancelled, t.retried, t.lost, t.runs, t.duration_sum,
                                 t.duration_max, *t.histogram])


def _upsert_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    table = qn(JobCounter._meta.db_table)
    columns = ["queue", "name", "span", "start", "completed", "failed", "cancelled", "retried",
               "lost", "runs", "duration_sum", "duration_max", *HISTOGRAM_COLUMNS]
    greatest = "GREATEST" if vendor == "postgresql" else "MAX"
    sets = [f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in _SUMMED]
    sets.append(f"{qn('duration_max')} = {greatest}({table}.{qn('duration_max')}, "
                f"excluded.{qn('duration_max')})")
    return (f"INSERT INTO {table} ({', '.join(qn(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({qn('queue')}, {qn('name')}, {qn('span')}, {qn('start')}) "
            f"DO UPDATE SET {', '.join(sets)}")


def roll_up(now: datetime | None = None) -> None:
    """Minutes older than ``JOB_COUNTERS_MINUTES_FOR`` into hours; hours older than
    ``JOB_COUNTERS_KEEP_DAYS`` into the all-time totals. Each step in one transaction."""
    now = now or timezone.now()
    _merge_into(JobCounter.Span.MINUTE, JobCounter.Span.HOUR,
                now - timedelta(seconds=settings.JOB_COUNTERS_MINUTES_FOR_S),
                lambda start: start.replace(minute=0))
    _merge_into(JobCounter.Span.HOUR, JobCounter.Span.TOTAL,
                now - timedelta(days=settings.JOB_COUNTERS_KEEP_DAYS), lambda start: EPOCH)


def _merge_into(source: str, target: str, before: datetime, bucket) -> None:
    with transaction.atomic():
        old = JobCounter.objects.filter(span=source, start__lt=before)
        merged: dict[tuple[str, str, datetime], Tally] = defaultdict(Tally)
        ids = []
        for counter in old.values("pk", "queue", "name", "start", "duration_max", *_SUMMED):
            ids.append(counter["pk"])
            merged[(counter["queue"], counter["name"], bucket(counter["start"]))].merge(
                Tally.of(counter))
        if ids:
            add(merged, target)
            JobCounter.objects.filter(pk__in=ids).delete()
