"""Active jobs whose run was lost: given back to the queue, or failed as poison.

A run is lost when the pool process running it died (the worker finds its
own orphans, ``requeue_lost``) or when its worker stopped beating (the
reconciler, ``tasks.upkeep.reconciler``). The job goes back to waiting and
is re-published; the compare-and-set claim keeps any stale duplicate
message from running it twice. A job that loses its worker
``JOB_MAX_WORKER_LOST`` times is failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tasks.enqueue.publishing import message_for, publish, stamps_at_insert
from tasks.jobs.states import JobState
from tasks.models import Job
from tasks.worker import canvas

logger = logging.getLogger("tasks.worker.lost")


def give_back(job_ids: Iterable[str], reason: str, now: datetime) -> int:
    """Re-queue (or, past ``JOB_MAX_WORKER_LOST``, fail) active jobs whose run was lost."""
    limit = settings.JOB_MAX_WORKER_LOST
    requeued = []
    job_ids = list(job_ids)
    # Stamped published before the send only where the reconciler can see a lost send
    # (Redis); elsewhere after the publisher confirm, else the relay sends it.
    stamped = stamps_at_insert()
    # A job whose cancellation was requested is not run again: its run ended.
    Job.objects.filter(pk__in=job_ids, state=JobState.ACTIVE, cancel_requested=True).update(
        state=JobState.CANCELLED, finished_at=now
    )
    for job_id, lost, attempts, errors, spec, group_id in Job.objects.filter(
        pk__in=job_ids, state=JobState.ACTIVE
    ).values_list("id", "lost_count", "attempts_made", "errors", "canvas", "group_id"):
        entry = {"attempt": attempts, "error": f"WorkerLost: {reason}", "traceback": "",
                 "started_at": None, "failed_at": now.isoformat()}
        history = [*(errors or []), entry]
        if lost + 1 >= limit:
            reason = f"worker lost {lost + 1} times"
            # Failed for good: its errbacks, chord or flow parent hear of it in the same
            # transaction, as for any other last failure (else a flow's parent waits for ever).
            with transaction.atomic():
                changed = Job.objects.filter(pk=job_id, state=JobState.ACTIVE).update(
                    state=JobState.FAILED, lost_count=lost + 1, finished_at=now,
                    errors=[*history[:-1], {**entry, "error": reason}],
                )
                if changed:
                    canvas.after_failure(job_id, spec, group_id, reason)
            if changed:
                logger.error("job %s failed: worker lost %d times", job_id, lost + 1)
            continue
        with transaction.atomic():
            changed = Job.objects.filter(pk=job_id, state=JobState.ACTIVE).update(
                state=JobState.WAITING, lost_count=F("lost_count") + 1,
                attempts_made=F("attempts_made") - 1, enqueued_at=now,
                published_at=now if stamped else None,
                errors=history,
            )
        if changed:
            requeued.append(job_id)
            logger.warning("job %s re-queued: %s", job_id, reason)
    if requeued:
        publish([message_for(job) for job in Job.objects.filter(pk__in=requeued)], claimed=stamped)
    return len(requeued)


def requeue_lost(hostname: str, exclude_ids: Iterable[str] = (), now: datetime | None = None,
                 started_before: datetime | None = None) -> int:
    """Called by a live worker for its own orphans (jobs no request of it holds)."""
    now = now or timezone.now()
    jobs = Job.objects.active().filter(worker=hostname).exclude(pk__in=list(exclude_ids))
    if started_before is not None:
        jobs = jobs.filter(started_at__lt=started_before)
    ids = list(jobs.values_list("id", flat=True))
    return give_back(ids, f"the process running it on {hostname} died", now) if ids else 0
