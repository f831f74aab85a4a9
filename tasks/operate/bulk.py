"""Operator actions over many jobs (clean, retry all failed): now, or as a background job.

Small ones run in the request. One over more than ``BACKGROUND_FROM`` rows
runs as the job ``analytics.queue-operation`` (``tasks/processors/operations.py``):
batch by batch (``retention.DELETE_BATCH``, ``actions.RETRY_BATCH``), its
progress (percent) and a log line per batch on its own row, so the job page
shows how far it got; cancelling it stops it between batches. A retry-all
of 50,000 jobs took 10.5 s inside one request before.

The dashboard calls ``clean_or_schedule`` / ``retry_failed_or_schedule`` and,
when the outcome names a job, sends the operator to that job's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tasks.enqueue.api import add_job
from tasks.jobs.config import QueueName
from tasks.jobs.errors import InvalidArgumentsError, InvalidCleanStateError, JobCancelled
from tasks.jobs.routing import parse_queue
from tasks.jobs.states import CLEANABLE_SINCE, JobState
from tasks.models import Job
from tasks.operate import actions
from tasks.upkeep import retention

#: Rows above which an operation runs as a background job: a few thousand rows
#: take well under a second in a request; beyond, requests would wait (and
#: time out behind a proxy) on work the job page can show progressing instead.
BACKGROUND_FROM = 5_000

#: The job that runs them, and its operations.
JOB_NAME = "queue-operation"
OPERATIONS = ("clean", "retry-failed")


@dataclass(frozen=True)
class BulkOutcome:
    """``done``: rows handled in this call; else ``job_id``: the background job doing it."""

    total: int
    done: int | None = None
    job_id: str | None = None

    @property
    def in_background(self) -> bool:
        return self.job_id is not None


def clean_or_schedule(queue: QueueName | str, grace: Any, state: str, by: str,
                      background_from: int = BACKGROUND_FROM) -> BulkOutcome:
    """``clean``: now when at most ``background_from`` jobs match, else as a background job.

    ``grace`` is checked here (``InvalidCleanAgeError``); the cutoff is taken
    now, so the background job deletes what the operator was shown.
    """
    queue = parse_queue(queue)
    if state not in CLEANABLE_SINCE:
        raise InvalidCleanStateError(state, list(CLEANABLE_SINCE))
    now = timezone.now()
    cutoff = now - retention.to_timedelta(grace)
    total = retention.cleanable(queue, state, cutoff).count()
    if total <= background_from:
        return BulkOutcome(total, done=retention.clean(queue, grace, state, now=now))
    job_id = add_job(QueueName.ANALYTICS, JOB_NAME, {
        "operation": "clean", "queue": queue.value, "state": state,
        "before": cutoff.isoformat(), "by": by})
    return BulkOutcome(total, job_id=job_id)


def retry_failed_or_schedule(queue: QueueName | str, by: str,
                             background_from: int = BACKGROUND_FROM) -> BulkOutcome:
    """Retry every failed job of ``queue``: now when few, else as a background job."""
    queue = parse_queue(queue)
    total = Job.objects.filter(queue=queue.value, state=JobState.FAILED).count()
    if total <= background_from:
        return BulkOutcome(total, done=actions.retry_failed(queue.value, by))
    job_id = add_job(QueueName.ANALYTICS, JOB_NAME,
                     {"operation": "retry-failed", "queue": queue.value, "by": by})
    return BulkOutcome(total, job_id=job_id)


def check_operation(data: dict) -> None:
    """At enqueue (``@processor(check_data=…)``): a known operation on a declared queue."""
    operation = data.get("operation")
    if operation not in OPERATIONS:
        raise InvalidArgumentsError(JOB_NAME, f"operation must be one of {', '.join(OPERATIONS)}")
    parse_queue(data.get("queue"))
    if operation == "clean":
        if data.get("state") not in CLEANABLE_SINCE:
            raise InvalidArgumentsError(JOB_NAME, f"state must be one of "
                                                  f"{', '.join(CLEANABLE_SINCE)}")
        if not isinstance(data.get("before"), str) or _cutoff(data["before"]) is None:
            raise InvalidArgumentsError(JOB_NAME, "before must be an ISO 8601 date-time")


def run_operation(job: Any, operation: str, queue: str, by: str, state: str | None = None,
                  before: str | None = None) -> dict:
    """The background job's body: batches, with progress and a log line after each.

    ``job`` is the running job's handle (``update_progress``, ``log``,
    ``is_cancelled``). Cancelling stops it after the batch in hand (committed).
    """
    queue_name = parse_queue(queue)
    if operation == "clean":
        matching = retention.cleanable(queue_name, state, _cutoff(before))
        verb = f"deleted {state}"
    else:
        matching = Job.objects.filter(queue=queue_name.value, state=JobState.FAILED)
        verb = "retried failed"
    total = matching.count()
    progress = _Progress(job, total, f"{verb} job(s) of {queue_name.value}")
    job.log(f"{operation} of {total:,} job(s) of {queue_name.value} asked by {by}")
    job.update_progress(0)
    if operation == "clean":
        done = retention.delete_matching(matching, [state], on_batch=progress.advance)
    else:
        done = actions.retry_failed(queue_name.value, by, on_batch=progress.advance)
    job.update_progress(100)
    return {"operation": operation, "queue": queue_name.value, "done": done, "found": total}


class _Progress:
    def __init__(self, job: Any, total: int, label: str) -> None:
        self.job, self.total, self.label, self.done = job, total, label, 0

    def advance(self, n: int) -> None:
        self.done += n
        percent = 100 if not self.total else min(99, 100 * self.done // self.total)
        self.job.update_progress(percent)
        self.job.log(f"{self.label}: {self.done:,} of {self.total:,}")
        if self.job.is_cancelled():
            raise JobCancelled(self.job.id)


def _cutoff(text: str | None) -> datetime | None:
    """An aware ISO 8601 date-time, or None."""
    try:
        moment = parse_datetime(text or "")
    except ValueError:
        return None
    return None if moment is None or timezone.is_naive(moment) else moment
