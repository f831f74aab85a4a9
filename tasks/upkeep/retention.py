"""Retention: delete finished jobs past their queue's age and count limits, and forgotten workers."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from tasks.jobs.config import QUEUE_PRESETS, QueueName
from tasks.jobs.errors import InvalidCleanAgeError, InvalidCleanStateError
from tasks.jobs.limits import MAX_CLEAN_AGE
from tasks.jobs.states import CLEANABLE_SINCE, JobState
from tasks.models import Job
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


def clean(queue: QueueName, grace: Any, state: str, limit: int | None = None,
          now: datetime | None = None) -> int:
    """Delete jobs of ``queue`` in ``state`` older than ``grace``; return how many."""
    if state not in CLEANABLE_SINCE:
        raise InvalidCleanStateError(state, list(CLEANABLE_SINCE))
    cutoff = (now or timezone.now()) - to_timedelta(grace)
    field = CLEANABLE_SINCE[state]
    doomed = Job.objects.filter(queue=queue.value, state=state, **{f"{field}__lt": cutoff})
    if limit is not None:
        doomed = Job.objects.filter(pk__in=list(doomed.values_list("id", flat=True)[:limit]))
    return _deleted_jobs(doomed.delete())


def _deleted_jobs(outcome: tuple[int, dict[str, int]]) -> int:
    """``QuerySet.delete()`` counts cascaded log lines too; report jobs only."""
    return outcome[1].get(Job._meta.label, 0)


def keep_newest(queue: QueueName, state: str, count: int) -> int:
    """Delete all but the newest ``count`` finished jobs in ``state``."""
    boundary = (
        # finished_at IS NOT NULL, true of every finished job, is what lets the
        # partial index job_finished serve this ORDER BY.
        Job.objects.filter(queue=queue.value, state=state, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)[count:count + 1]
    )
    boundary = list(boundary)
    if not boundary:
        return 0
    return _deleted_jobs(
        Job.objects.filter(queue=queue.value, state=state, finished_at__lte=boundary[0]).delete()
    )


def enforce_retention(now: datetime | None = None) -> dict[str, int]:
    """Apply every queue's preset; returns deletions per queue."""
    now = now or timezone.now()
    report = {}
    for queue, preset in QUEUE_PRESETS.items():
        n = clean(queue, timedelta(seconds=preset.keep_completed_s), JobState.COMPLETED, now=now)
        n += keep_newest(queue, JobState.COMPLETED, preset.keep_completed_count)
        n += clean(queue, timedelta(seconds=preset.keep_failed_s), JobState.FAILED, now=now)
        n += clean(queue, timedelta(seconds=preset.keep_cancelled_s), JobState.CANCELLED, now=now)
        report[queue.value] = n
    forget_gone_workers(now)
    return report
