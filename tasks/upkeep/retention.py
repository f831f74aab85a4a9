"""Retention: delete finished jobs past their queue's age and count limits, and forgotten workers.

Every deletion (retention, ``clean``, ``remove``) goes through ``delete_jobs``:
by primary key, in batches, without loading rows, log lines deleted with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from tasks.enqueue.cursors import raw_cursor
from tasks.enqueue.windows import delete_expired as delete_expired_windows
from tasks.jobs.config import QUEUE_PRESETS, QueueName
from tasks.jobs.errors import InvalidCleanAgeError, InvalidCleanStateError
from tasks.jobs.limits import MAX_CLEAN_AGE
from tasks.jobs.states import CLEANABLE_SINCE, JobState
from tasks.models import Job, JobLog
from tasks.upkeep import counters
from tasks.worker.presence import forget_gone_workers


def to_timedelta(grace: Any) -> timedelta:
    """A timedelta, or milliseconds like BullMQ's ``clean(grace)``, 0 to ``MAX_CLEAN_AGE``."""
    if isinstance(grace, timedelta):
        age = grace
    elif isinstance(grace, (int, float)) and not isinstance(grace, bool):
        # Compared before ``timedelta()``, which overflows (or rejects NaN) on its own.
        if not (math.isfinite(grace) and 0 <= grace <= MAX_CLEAN_AGE / timedelta(milliseconds=1)):
            raise InvalidCleanAgeError(grace)
        age = timedelta(milliseconds=grace)
    else:
        raise InvalidCleanAgeError(grace)
    if not timedelta(0) <= age <= MAX_CLEAN_AGE:
        raise InvalidCleanAgeError(grace)
    return age


#: Jobs deleted per transaction. Each batch is one SELECT of ids (by an index),
#: one ``DELETE … WHERE id IN (…) RETURNING id`` and one ``DELETE`` of their log
#: lines: memory holds ids only, and on SQLite the database's one write lock is
#: held per batch, so workers' claims and completions interleave. 300,000 jobs
#: took 3.2–3.5 s whether 1,000 or 10,000 a batch (bench/retention.py, 2-core VM):
#: 2,000 keeps each lock short (~25 ms).
DELETE_BATCH = 2000


def _finished_row(row: tuple) -> tuple:
    """A deleted row as ``counters.COLUMNS`` values, its times parsed (text on SQLite)."""
    *head, started, finished = row
    return (*head, _aware(started), _aware(finished))


def _aware(value: Any) -> datetime | None:
    """A datetime column as a raw cursor returns it (text or naive UTC on SQLite), aware."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        from django.utils.dateparse import parse_datetime

        value = parse_datetime(value)
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def delete_jobs(job_ids: Sequence[str], states: Iterable[str] | None = None) -> list[str]:
    """Delete these jobs (only while in ``states``) and their log lines; return the ids deleted.

    Raw deletes: ``QuerySet.delete()`` of jobs loads every row into a model
    instance to cascade to ``JobLog`` (its foreign key has no database
    constraint, so the database cascades nothing): 300,000 rows took 26.5 s
    and 750 MB. The log lines are deleted here explicitly, in the same
    transaction, by the ``job_id`` index.
    """
    ids = list(job_ids)
    if not ids:
        return []
    qn = connection.ops.quote_name
    # ``raw_cursor``: DEBUG's query log would keep every id list (tens of MB per 300,000).
    with transaction.atomic(), raw_cursor() as cursor:
        sql = (f"DELETE FROM {qn(Job._meta.db_table)} WHERE {qn('id')} IN ({_marks(ids)})")
        params = list(ids)
        if states is not None:
            states = [JobState(state).value for state in states]
            sql += f" AND {qn('state')} IN ({_marks(states)})"
            params += states
        returned = ", ".join(qn(c) for c in ("id", *counters.COLUMNS))
        cursor.execute(f"{sql} RETURNING {returned}", params)
        rows = cursor.fetchall()
        deleted = [row[0] for row in rows]
        # Runs not counted yet (finished after the watermark) go into the counters now.
        counters.fold_deleted([_finished_row(row[1:]) for row in rows])
        if deleted:
            column = JobLog._meta.get_field("job").column
            cursor.execute(f"DELETE FROM {qn(JobLog._meta.db_table)} WHERE {qn(column)} "
                           f"IN ({_marks(deleted)})", deleted)
    return deleted


def _marks(values: Sequence) -> str:
    return ", ".join(["%s"] * len(values))


def delete_matching(jobs: QuerySet, states: Iterable[str], limit: int | None = None,
                    on_batch: Callable[[int], None] | None = None) -> int:
    """Delete the jobs ``jobs`` selects, ``DELETE_BATCH`` at a time; return how many.

    ``states``: the states ``jobs`` filters on, checked again by the delete, so
    a job that left them meanwhile (retried, say) is kept. ``on_batch(n)``
    after each batch (progress). Memory and lock time are per batch.
    """
    states = list(states)
    total = 0
    while limit is None or total < limit:
        size = DELETE_BATCH if limit is None else min(DELETE_BATCH, limit - total)
        with transaction.atomic():
            ids = list(jobs.values_list("id", flat=True)[:size])
            deleted = len(delete_jobs(ids, states))
        total += deleted
        if on_batch is not None and deleted:
            on_batch(deleted)
        if len(ids) < size or not deleted:  # the last batch, or the rest changed under us
            break
    return total


def clean(queue: QueueName, grace: Any, state: str, limit: int | None = None,
          now: datetime | None = None, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete jobs of ``queue`` in ``state`` older than ``grace``, in batches; return how many."""
    if state not in CLEANABLE_SINCE:
        raise InvalidCleanStateError(state, list(CLEANABLE_SINCE))
    cutoff = (now or timezone.now()) - to_timedelta(grace)
    return delete_matching(cleanable(queue, state, cutoff), [state], limit, on_batch)


def cleanable(queue: QueueName | str, state: str, cutoff: datetime) -> QuerySet:
    """The jobs ``clean`` deletes: in ``state``, dated (``CLEANABLE_SINCE``) before ``cutoff``."""
    field = CLEANABLE_SINCE[state]
    return Job.objects.filter(queue=str(queue), state=state, **{f"{field}__lt": cutoff})


def keep_newest(queue: QueueName, state: str, count: int, rows: QuerySet | None = None) -> int:
    """Delete all but the newest ``count`` finished jobs in ``state`` (of ``rows``, if given)."""
    rows = Job.objects.filter(queue=queue.value, state=state) if rows is None else rows
    boundary = list(
        # finished_at IS NOT NULL, true of every finished job, is what lets the
        # partial index job_finished serve this ORDER BY.
        rows.filter(finished_at__isnull=False).order_by("-finished_at")
        .values_list("finished_at", flat=True)[count:count + 1]
    )
    if not boundary:
        return 0
    return delete_matching(rows.filter(finished_at__lte=boundary[0]), [state])


#: The key of a job's own retention (``Job.keep``) for each state it covers.
OWN_KEEP = {JobState.COMPLETED: "completed", JobState.FAILED: "failed"}


def _by_preset(queue: QueueName, state: str, cutoff: datetime | None = None) -> QuerySet:
    """Jobs of ``queue`` in ``state`` that follow the queue's preset (no rule of their own)."""
    rows = Job.objects.filter(queue=queue.value, state=state)
    if state in OWN_KEEP:
        rows = rows.exclude(keep__has_key=OWN_KEEP[state])
    if cutoff is not None:
        rows = rows.filter(**{f"{CLEANABLE_SINCE[state]}__lt": cutoff})
    return rows


def enforce_retention(now: datetime | None = None) -> dict[str, int]:
    """Apply every queue's preset, and each job's own rule; returns deletions per queue."""
    now = now or timezone.now()
    report = {}
    for queue, preset in QUEUE_PRESETS.items():
        ages = ((JobState.COMPLETED, preset.keep_completed_s),
                (JobState.FAILED, preset.keep_failed_s),
                (JobState.CANCELLED, preset.keep_cancelled_s))
        n = 0
        for state, seconds in ages:
            n += delete_matching(_by_preset(queue, state, now - timedelta(seconds=seconds)),
                                 [state])
        n += keep_newest(queue, JobState.COMPLETED, preset.keep_completed_count,
                         _by_preset(queue, JobState.COMPLETED))
        report[queue.value] = n
    for queue, n in _own_rules(now).items():
        report[queue] = report.get(queue, 0) + n
    forget_gone_workers(now)
    delete_expired_windows(now)  # unique/debounce windows: apart from the job rows
    return report


def _own_rules(now: datetime) -> dict[str, int]:
    """Jobs with their own ``remove_on_complete``/``remove_on_fail`` (BullMQ's job options).

    ``remove``: True deletes at this pass, False keeps; ``age_s`` deletes past
    that age; ``count`` keeps the newest that many of the job's queue and name.
    """
    report: dict[str, int] = {}
    groups = (Job.objects.filter(keep__isnull=False, finished_at__isnull=False,
                                 state__in=list(OWN_KEEP))
              .values_list("queue", "name", "state").distinct())
    for queue, name, state in groups:
        key = OWN_KEEP[JobState(state)]
        rows = Job.objects.filter(queue=queue, name=name, state=state, keep__has_key=key)
        n = delete_matching(rows.filter(**{f"keep__{key}__remove": True}), [state])
        for age_s in set(rows.values_list(f"keep__{key}__age_s", flat=True)) - {None}:
            n += delete_matching(rows.filter(**{f"keep__{key}__age_s": age_s,
                                                "finished_at__lt": now - timedelta(seconds=age_s)}),
                                 [state])
        for count in set(rows.values_list(f"keep__{key}__count", flat=True)) - {None}:
            n += keep_newest(QueueName(queue), state, count,
                             rows.filter(**{f"keep__{key}__count": count}))
        report[queue] = report.get(queue, 0) + n
    return report
