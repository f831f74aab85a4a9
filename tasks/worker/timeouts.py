"""Jobs that ran past a time limit: a ``JobTimeoutError`` attempt, retried by the job's backoff.

Celery's prefork pool enforces the limits of each message's ``timelimit``
header (the job's own, ``tasks.jobs.timeouts``, else its task's):

- at the **soft** limit it raises ``SoftTimeLimitExceeded`` inside the
  processor; ``JobTask`` records the attempt as ``JobTimeoutError`` naming the
  limit (``as_timeout``), so a processor may clean up and the error says what
  happened;
- at the **hard** limit the pool stops the process and Celery calls the task's
  ``on_failure`` with ``TimeLimitExceeded`` in the worker's main process; the
  run still active on the row (``timed_out_run``) is recorded the same way.

Either way it is a failed attempt like any other: retried after the backoff
while attempts remain (unless the processor's ``retry_on``/``fail_on`` say
otherwise), else failed with every attempt's error kept. The solo and threads
pools enforce no time limits (Celery's own limitation).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.utils import timezone

from tasks.jobs.errors import JobTimeoutError
from tasks.jobs.states import JobState
from tasks.jobs.timeouts import describe_ms
from tasks.models import Job
from tasks.worker.lifecycle import Claim

logger = logging.getLogger("tasks.jobs")

#: How much later than its pool timer a run may have been claimed (message accepted,
#: then the claim): a row started later than the limit before now is another run.
CLAIM_SLACK = timedelta(seconds=5)


def as_timeout(exc: BaseException, task: Any) -> BaseException:
    """``SoftTimeLimitExceeded`` as the ``JobTimeoutError`` recorded for the attempt; else ``exc``."""
    if not isinstance(exc, SoftTimeLimitExceeded):
        return exc
    hard_s, soft_s = task.request.timelimit or (None, None)
    soft_s = soft_s or task.soft_time_limit
    limit = describe_ms(soft_s * 1000) if soft_s else "its time limit"
    # ``timeout`` alone sends the same value twice (``tasks.jobs.timeouts``): no soft limit
    # was asked for, and the hard one follows at once.
    kind = "timeout" if soft_s and soft_s == hard_s else "soft timeout"
    error = JobTimeoutError(f"job exceeded its {kind} of {limit}")
    error.__cause__ = exc
    return error


def hard_error(exc: TimeLimitExceeded) -> JobTimeoutError:
    limit_s = exc.args[0] if exc.args else None
    limit = describe_ms(limit_s * 1000) if isinstance(limit_s, (int, float)) else "its time limit"
    return JobTimeoutError(f"job exceeded its timeout of {limit}: its process was stopped")


def timed_out_run(job_id: str, exc: TimeLimitExceeded) -> Claim | None:
    """The run the pool just stopped, as the row has it; None if it already ended.

    Read in the worker's main process, which holds no ``Claim``: the row's
    worker and start identify the run, and the guarded writes that end it
    (``lifecycle``) change nothing if it ended meanwhile. A run that started
    after the limit began counting cannot be the one stopped.
    """
    row = (Job.objects.filter(pk=job_id, state=JobState.ACTIVE)
           .values_list("attempts_made", "max_attempts", "backoff", "worker", "started_at",
                        "queue", "name", "data", "canvas", "group_id", "expires_at").first())
    if row is None:
        return None
    attempts, max_attempts, backoff, worker, started, queue, name, data, canvas, group, exp = row
    limit_s = exc.args[0] if exc.args and isinstance(exc.args[0], (int, float)) else 0
    if started is None or started > timezone.now() - timedelta(seconds=limit_s) + CLAIM_SLACK:
        logger.warning("job %s: a hard time limit fired, but its row shows a later run; left "
                       "as it is", job_id)
        return None
    return Claim(attempts_made=attempts, max_attempts=max_attempts, backoff=backoff or {},
                 worker=worker, started_at=started, queue=queue, name=name, data=data,
                 canvas=canvas, group_id=group or "", expires_at=exp)


__all__ = ["JobTimeoutError", "TimeLimitExceeded", "as_timeout", "hard_error", "timed_out_run"]
