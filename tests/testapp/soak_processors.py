"""The full-strength soak's jobs (``tests/reliability/soak``): one body on every queue.

The plan travels in the job's data, so a worker knows what to do without
the producer; the checker reads the same plan from the producers' logs.
Every run is counted (``Execution``); the effect is done once per job,
guarded by an idempotency record claimed in the effect's own transaction.
"""

from __future__ import annotations

import os
import time

from django.db import IntegrityError, transaction

from tasks.jobs.config import QueueName
from tasks.jobs.errors import JobCancelled, PermanentJobError, TransientJobError
from tasks.worker.job import JobContext
from tasks.worker.registry import processor
from tests.testapp.models import Effect, Execution, IdempotencyKey

#: How often a cancellable job looks at its cancellation flag (one query each).
CANCEL_POLL_S = 0.05


def _effect(job_id: str) -> None:
    """The side effect that must not repeat: claimed and done in one transaction."""
    try:
        with transaction.atomic():
            IdempotencyKey.objects.create(job_id=job_id)
            Effect.objects.create(job_id=job_id)
    except IntegrityError:
        pass  # an earlier, interrupted run did it


def run_plan(job: JobContext, plan: str, work_ms: int = 5, fails: int = 1,
             hold_ms: int = 0) -> str:
    """One run of a soak job, by plan (``tests.reliability.soak.plan.PLANS``)."""
    Execution.objects.create(key="chaos", job_id=job.id, attempt=job.attempts_made,
                             worker_pid=os.getpid())
    time.sleep(work_ms / 1000)
    if plan == "fail":
        raise TransientJobError(f"planned failure on attempt {job.attempts_made}")
    if plan == "permanent":
        raise PermanentJobError("planned permanent failure")
    if plan == "flaky" and job.attempts_made <= fails:
        raise TransientJobError(f"planned flaky failure on attempt {job.attempts_made}")
    if plan.startswith("cancel"):
        # Long enough for the producer to see it active and cancel it; the flag is
        # checked between chunks and once more right before the effect.
        until = time.monotonic() + hold_ms / 1000
        while True:
            if job.is_cancelled():
                raise JobCancelled()
            if time.monotonic() >= until:
                break
            time.sleep(CANCEL_POLL_S)
    _effect(job.id)
    return "done"


@processor(QueueName.EMAIL, "chaos")
def chaos_email(job: JobContext, plan: str, work_ms: int = 5, fails: int = 1,
                hold_ms: int = 0) -> str:
    return run_plan(job, plan, work_ms, fails, hold_ms)


# Two of the four queues run their jobs in batches (``tasks.worker.batch``): every fault of
# the soak hits batched execution too (issue 17).
@processor(QueueName.NOTIFICATIONS, "chaos", batch=10)
def chaos_notifications(job: JobContext, plan: str, work_ms: int = 5, fails: int = 1,
                        hold_ms: int = 0) -> str:
    return run_plan(job, plan, work_ms, fails, hold_ms)


@processor(QueueName.DATA_PROCESSING, "chaos")
def chaos_data(job: JobContext, plan: str, work_ms: int = 5, fails: int = 1,
               hold_ms: int = 0) -> str:
    return run_plan(job, plan, work_ms, fails, hold_ms)


@processor(QueueName.ANALYTICS, "chaos", batch=10)
def chaos_analytics(job: JobContext, plan: str, work_ms: int = 5, fails: int = 1,
                    hold_ms: int = 0) -> str:
    return run_plan(job, plan, work_ms, fails, hold_ms)
