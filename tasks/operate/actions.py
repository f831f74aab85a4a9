"""Operator actions on jobs: retry, promote, cancel, remove, change priority. Each is a guarded update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from tasks import fastpath
from tasks.enqueue.publishing import (
    MESSAGE_FIELDS,
    batch_size,
    message_for,
    message_from_values,
    publish_on_commit,
)
from tasks.jobs.errors import JobNotFoundError, JobStateError
from tasks.jobs.routing import task_name
from tasks.jobs.spec import parse_priority
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
    if Job.objects.filter(pk=job_id, state__in=(JobState.WAITING, JobState.DELAYED,
                                                JobState.WAITING_CHILDREN)).update(
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


def set_rate_limit(queue: str, name: str, rate: str, by: str = "system") -> str:
    """Set a global rate limit of ``queue`` (``name`` empty) or of one job name; "" lifts it.

    Overrides the queue config at once for every process (within
    ``ratelimits.REFRESH_S``). Returns the limit as shown (``"100/min"``), or "".
    """
    from tasks.enqueue import ratelimits
    from tasks.enqueue.task import get_task
    from tasks.jobs.rates import parse_rate
    from tasks.jobs.routing import parse_queue
    from tasks.models import RateLimit

    queue_name = parse_queue(queue)
    if name:
        get_task(queue_name, name)  # an unknown job name is an error, not a silent limit
    shown = str(parse_rate(rate)) if rate else ""
    RateLimit.objects.update_or_create(queue=queue_name.value, name=name,
                                       defaults={"rate": shown, "changed_by": by})
    ratelimits.forget()
    return shown


def remove_job(job_id: str, by: str = "system") -> bool:
    """Delete a job record and its log lines (an active job cannot be removed; cancel it first)."""
    return bool(retention.delete_jobs([job_id], REMOVABLE))


def change_priority(job_id: str, priority: Any, by: str = "system") -> str:
    """Give a waiting or delayed job another priority (1 runs first); returns its state.

    A delayed job is published at the new priority when it falls due. A
    waiting job's message is published again at the new priority: raised, the
    new message overtakes the jobs in between and the old one becomes a
    duplicate that finds the job no longer waiting (the claim is a
    compare-and-set) and does nothing. Lowered, the old message would still
    run it early, so it is taken back from the broker first (Redis, with the
    redis-push fast path; ``JobStateError`` saying why elsewhere: lower it
    while delayed, or cancel and add it again). A message a worker already
    took runs the job. ``InvalidPriorityError`` outside 1..5.
    """
    new = parse_priority(priority)
    with transaction.atomic():
        job = (Job.objects.select_for_update().filter(pk=job_id)
               .only("state", *MESSAGE_FIELDS).first())
        if job is None:
            raise JobNotFoundError(job_id)
        if job.state not in (JobState.WAITING, JobState.DELAYED):
            raise JobStateError(job_id, job.state, "change the priority of")
        old = job.priority
        if new == old:
            return job.state
        waiting = job.state == JobState.WAITING
        if waiting and new > old and batch_size(task_name(job.queue, job.name)) >= 2:
            raise JobStateError(
                job_id, "waiting, and its processor sends its jobs in batches: the queued "
                        "message it shares with other jobs cannot be taken back; lower its "
                        "priority while it is delayed, or cancel it and add it again",
                "lower the priority of")
        if waiting and new > old:
            try:
                fastpath.take_back(current_app, job.queue, job.pk)
            except fastpath.TakeBackRefused as refused:
                raise JobStateError(
                    job_id, f"waiting and its queued message cannot be taken back ({refused}); "
                            "lower its priority while it is delayed, or cancel it and add it "
                            "again", "lower the priority of") from None
        changes: dict[str, Any] = {"priority": new}
        if waiting:  # sent again after commit, stamped then (as any publish)
            changes["published_at"] = None
        if not Job.objects.filter(pk=job_id, state=job.state).update(**changes):
            raise JobStateError(job_id, "no longer " + job.state, "change the priority of")
        append_log(job_id, f"priority changed from {old} to {new} by {by}")
        if waiting:
            job.priority = new
            publish_on_commit([message_for(job)])
    return job.state

