"""Operator actions on jobs: retry, promote, cancel, remove. Each is a guarded update."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from tasks.enqueue.publishing import MESSAGE_FIELDS, message_from_values, publish_on_commit
from tasks.jobs.errors import JobNotFoundError, JobStateError
from tasks.models import Job, JobLog, JobState
from tasks.upkeep import retention
from tasks.worker.lifecycle import append_log


def _get(job_id: str) -> Job:
    try:
        return Job.objects.get(pk=job_id)
    except Job.DoesNotExist:
        raise JobNotFoundError(job_id) from None


def _requeue(job_ids: list[str], from_states: tuple[str, ...], note: str, reset_attempts: bool) -> int:
    """Move jobs back to waiting and publish them after commit."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(Job.objects.filter(pk__in=job_ids, state__in=from_states).values_list("id", flat=True))
        if not ids:
            return 0
        changes = {"state": JobState.WAITING, "enqueued_at": now, "published_at": None,
                   "run_at": None, "finished_at": None, "cancel_requested": False}
        if reset_attempts:
            changes["attempts_made"] = 0
        Job.objects.filter(pk__in=ids, state__in=from_states).update(**changes)
        JobLog.objects.bulk_create(JobLog(job_id=job_id, message=note) for job_id in ids)
        # Only what a message needs: failed rows carry every attempt's traceback.
        publish_on_commit([message_from_values(values) for values in
                           Job.objects.filter(pk__in=ids).values_list(*MESSAGE_FIELDS)])
    return len(ids)


def retry_job(job_id: str, by: str = "system") -> bool:
    """Run a failed (or cancelled) job again with a fresh set of attempts."""
    job = _get(job_id)
    done = _requeue([job_id], (JobState.FAILED, JobState.CANCELLED), f"retried by {by}", True)
    if not done:
        raise JobStateError(job_id, job.state, "retry")
    return True


#: Jobs re-queued per transaction by "retry all failed" (keeps IN lists and locks short).
RETRY_BATCH = 1000


def retry_failed(queue: str, by: str = "system",
                 on_batch: Callable[[int], None] | None = None) -> int:
    """Re-queue every failed job of ``queue``, a batch per transaction; ``on_batch(n)`` after each."""
    total = 0
    while True:
        # finished_at IS NOT NULL, true of every failed job, lets the partial
        # index job_finished give this order (no sort of all failed jobs per batch).
        ids = list(Job.objects.filter(queue=queue, state=JobState.FAILED, finished_at__isnull=False)
                   .order_by("finished_at").values_list("id", flat=True)[:RETRY_BATCH])
        if not ids:
            return total
        done = _requeue(ids, (JobState.FAILED,), f"retried by {by} (retry all failed)", True)
        total += done
        if on_batch is not None:
            on_batch(done)


def promote_job(job_id: str, by: str = "system") -> bool:
    """Run a delayed job now."""
    job = _get(job_id)
    if not _requeue([job_id], (JobState.DELAYED,), f"promoted by {by}", False):
        raise JobStateError(job_id, job.state, "promote")
    return True


def cancel_job(job_id: str, by: str = "system") -> str:
    """Cancel a waiting or delayed job; ask an active one to stop.

    Returns the resulting state: ``cancelled``, or ``active`` when only a
    cancellation request was recorded (the processor sees ``job.is_cancelled()``).
    """
    now = timezone.now()
    job = _get(job_id)
    if Job.objects.filter(pk=job_id, state__in=(JobState.WAITING, JobState.DELAYED)).update(
        state=JobState.CANCELLED, cancel_requested=True, cancel_requested_at=now, finished_at=now
    ):
        append_log(job_id, f"cancelled by {by}")
        return JobState.CANCELLED
    if Job.objects.filter(pk=job_id, state=JobState.ACTIVE).update(
        cancel_requested=True, cancel_requested_at=now
    ):
        append_log(job_id, f"cancellation requested by {by}")
        return JobState.ACTIVE
    raise JobStateError(job_id, job.state, "cancel")


#: States a job can be removed in: any but active (cancel it first).
REMOVABLE = tuple(state for state in JobState if state != JobState.ACTIVE)


def remove_job(job_id: str, by: str = "system") -> bool:
    """Delete a job record and its log lines (an active job cannot be removed; cancel it first)."""
    return bool(retention.delete_jobs([job_id], REMOVABLE))

