"""Running a job: the worker half of every processor's Celery task.

``__call__`` compare-and-sets the row to active (a duplicate delivery does
nothing), runs the processor, then records completion, a retry (delayed by
the backoff) or the final failure, and calls the failure hook. The enqueue
half (``delay``/``apply_async`` record a job) is ``tasks.enqueue.task``.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import traceback
import urllib.error
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.utils import timezone

from tasks.enqueue.task import RecordingTask
from tasks.jobs.backoff import CustomStrategy, next_delay_ms
from tasks.jobs.errors import (
    JobCancelled,
    PermanentJobError,
    TransientJobError,
)
from tasks.jobs.states import JobState
from tasks.worker import lifecycle
from tasks.worker.job import JobContext

logger = logging.getLogger("tasks.jobs")

#: Errors that can pass on a later attempt. Anything else is a bug or bad
#: data: retrying it only repeats the failure, so the job fails at once.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    smtplib.SMTPException,
    urllib.error.URLError,
    SoftTimeLimitExceeded,
    TransientJobError,
)


class JobTask(RecordingTask):
    """Base class of every processor; configured by ``tasks.worker.registry.processor``.

    Enqueuing (``delay``/``apply_async``) is ``RecordingTask``'s; this half runs a job.
    """

    abstract = True
    retry_on: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    fail_on: ClassVar[tuple[type[BaseException], ...]] = (PermanentJobError,)
    backoff_strategy: ClassVar[CustomStrategy | None] = None
    failure_hook: ClassVar[Callable[[JobContext, BaseException], None] | None] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly or request.is_eager:
            job = JobContext(id="direct", queue=self.queue_name.value, name=self.job_name,
                             data=kwargs, attached=False)
            return self.run(job, *args, **kwargs)
        return self._execute(request.id, request.hostname or "", kwargs)

    def _execute(self, job_id: str, worker: str, data: dict) -> None:
        won = lifecycle.claim(job_id, worker)
        if won is None:
            self._skip(job_id)
            return None
        job = JobContext(id=job_id, queue=self.queue_name.value, name=self.job_name, data=data,
                         attempts_made=won.attempts_made, max_attempts=won.max_attempts)
        logger.info("job %s active (attempt %d/%d)", job_id, won.attempts_made,
                    won.max_attempts, extra=self._extra(job_id))
        started = timezone.now()
        try:
            result = self.run(job, **data)
        except JobCancelled:
            lifecycle.mark_cancelled(job_id, run=won)
            logger.info("job %s cancelled", job_id, extra=self._extra(job_id))
            return None
        except Exception as exc:
            self._fail(job, won, exc, started)
            return None
        if lifecycle.complete(job_id, _jsonable(result), run=won):
            logger.info("job %s completed", job_id, extra=self._extra(job_id))
        else:
            logger.warning("job %s finished but was no longer active (cancelled or re-queued "
                           "meanwhile): result not recorded", job_id, extra=self._extra(job_id))
        return None

    def _skip(self, job_id: str) -> None:
        """A delivery that must not run: a duplicate, a cancelled job, or a foreign message."""
        from tasks.models import Job
        from tasks.worker.rejections import record_rejected

        if Job.objects.filter(pk=job_id).exists():
            logger.info("job %s delivered but not waiting (duplicate or cancelled): skipped",
                        job_id, extra=self._extra(job_id))
        else:
            record_rejected("no-job-record", self.request, f"task {self.name} id {job_id}")

    def _fail(self, job: JobContext, won: lifecycle.Claim, exc: Exception, started: datetime) -> None:
        now = timezone.now()
        entry = {
            "attempt": won.attempts_made,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "started_at": started.isoformat(),
            "failed_at": now.isoformat(),
        }
        retry_in = None
        if self._retryable(exc) and won.attempts_made < won.max_attempts:
            delay_ms = next_delay_ms(won.backoff, won.attempts_made, self.backoff_strategy)
            retry_in = timedelta(milliseconds=delay_ms)
        state = lifecycle.record_failure(job.id, entry, retry_in, now, run=won)
        if state == JobState.DELAYED:
            logger.warning("job %s failed attempt %d/%d, retrying in %.1fs: %s", job.id,
                           won.attempts_made, won.max_attempts, retry_in.total_seconds(),
                           entry["error"], extra=self._extra(job.id))
            raise Retry(exc=exc, when=now + retry_in)
        if state == JobState.FAILED:
            logger.error("job %s failed permanently after %d attempt(s): %s", job.id,
                         won.attempts_made, entry["error"], extra=self._extra(job.id))
            self._call_failure_hook(job, exc)
            raise exc

    def _retryable(self, exc: BaseException) -> bool:
        return not isinstance(exc, self.fail_on) and isinstance(exc, self.retry_on)

    def _call_failure_hook(self, job: JobContext, exc: BaseException) -> None:
        hook = type(self).failure_hook
        if hook is None:
            return
        try:
            hook(job, exc)
        except Exception:
            logger.exception("failure hook of job %s raised", job.id)

    def _extra(self, job_id: str) -> dict:
        return {"job_id": job_id, "queue": self.queue_name.value, "job_name": self.job_name}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return {"repr": repr(value)}
    return value
