"""Writing job records: the one path every enqueue takes (``add_job``, ``.delay()``, beat)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from tasks.models import Job, JobState
from tasks.publishing import message_for, publish_on_commit
from tasks.spec import JobSpec

logger = logging.getLogger("tasks.jobs")


def _row(spec: JobSpec, now) -> Job:
    delayed = spec.delay_s > 0
    return Job(
        id=spec.job_id or str(uuid.uuid4()),
        queue=spec.queue.value,
        name=spec.name,
        data=spec.data,
        priority=spec.priority,
        state=JobState.DELAYED if delayed else JobState.WAITING,
        max_attempts=spec.attempts,
        backoff=spec.backoff,
        delay_ms=int(spec.delay_s * 1000),
        run_at=now + timedelta(seconds=spec.delay_s) if delayed else None,
        created_at=now,
        enqueued_at=None if delayed else now,
    )


def enqueue(spec: JobSpec) -> str:
    """Record one job in the caller's transaction; publish it after commit.

    A caller-chosen ``job_id`` that already exists adds nothing and returns
    that id (deduplication). Delayed jobs are not published here: the
    promoter sends them when they fall due.
    """
    job = _row(spec, timezone.now())
    if spec.job_id is not None:
        if Job.objects.filter(pk=job.id).exists():
            return job.id
        try:
            with transaction.atomic():
                job.save(force_insert=True)
        except IntegrityError:  # a concurrent enqueue of the same id won
            return job.id
    else:
        job.save(force_insert=True)
    if job.state == JobState.WAITING:
        publish_on_commit([message_for(job)])
    logger.info("job %s %s", job.id, job.state,
                extra={"job_id": job.id, "queue": job.queue, "job_name": job.name})
    return job.id


def enqueue_many(specs: Sequence[JobSpec]) -> list[str]:
    """Record many jobs in one transaction and publish them in one batch after commit.

    Caller-chosen ids that already exist are skipped (their ids are returned).
    """
    now = timezone.now()
    rows = [_row(spec, now) for spec in specs]
    wanted = {spec.job_id for spec in specs if spec.job_id is not None}
    with transaction.atomic():
        existing = set(Job.objects.filter(pk__in=wanted).values_list("id", flat=True)) if wanted else set()
        seen: set[str] = set()
        fresh = []
        for row in rows:
            if row.id in existing or row.id in seen:
                continue
            seen.add(row.id)
            fresh.append(row)
        Job.objects.bulk_create(fresh, batch_size=500)
        publish_on_commit([message_for(r) for r in fresh if r.state == JobState.WAITING])
    logger.info("%d job(s) added in bulk", len(fresh))
    return [r.id for r in rows]
