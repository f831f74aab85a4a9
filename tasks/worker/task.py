"""Running a job: the worker half of every processor's Celery task.

``__call__`` compare-and-sets the row to active (a duplicate delivery does
nothing), runs the processor, then records completion, a retry (delayed by
the backoff) or the final failure, and calls the failure hook. The enqueue
half (``delay``/``apply_async`` record a job) is ``tasks.enqueue.task``.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from celery.exceptions import Retry
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from tasks.enqueue.task import RecordingTask
from tasks.jobs.backoff import CustomStrategy, next_delay_ms
from tasks.jobs.errors import (
    DirectCallRefused,
    InvalidArgumentsError,
    JobCancelled,
    PermanentJobError,
    RateLimited,
)
from tasks.jobs.spec import valid_job_id
from tasks.jobs.states import JobState
from tasks.jobs.text import one_line, short_repr, storable
from tasks.worker import canvas, lifecycle, presence, timeouts
from tasks.worker.admission import in_worker
from tasks.worker.batch import BatchRun
from tasks.worker.job import JobContext
from tasks.worker.rejections import record_rejected, requeued_unless_claimed

logger = logging.getLogger("tasks.jobs")

#: As in the seed (and BullMQ): any exception retries until the job's attempts run out.
#: ``PermanentJobError`` (BullMQ's ``UnrecoverableError``) and a processor's ``fail_on``
#: fail at once; a processor narrows this with ``retry_on``.
RETRY_ANY: tuple[type[BaseException], ...] = (Exception,)


class JobTask(RecordingTask):
    """Base class of every processor; configured by ``tasks.worker.registry.processor``.

    Enqueuing (``delay``/``apply_async``) is ``RecordingTask``'s; this half runs a job.
    """

    abstract = True
    retry_on: ClassVar[tuple[type[BaseException], ...]] = RETRY_ANY
    fail_on: ClassVar[tuple[type[BaseException], ...]] = (PermanentJobError,)
    backoff_strategy: ClassVar[CustomStrategy | None] = None
    failure_hook: ClassVar[Callable[[JobContext, BaseException], None] | None] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly or request.is_eager:
            if in_worker():
                # Celery's starmap/map/chunks, or code in another job, calling this task as a
                # function: it would run the processor with no record. Jobs run from rows.
                record_rejected("called-directly", None, f"task {self.name}")
                raise DirectCallRefused(self.name)
            job = JobContext(id="direct", queue=self.queue_name.value, name=self.job_name,
                             data=kwargs, attached=False)
            return self.run(job, *args, **kwargs)
        return self._execute(request.id, request.hostname or "", kwargs, args)

    def _execute(self, job_id: str, worker: str, data: dict, args: tuple = ()) -> None:
        """Run the job ``job_id`` from its row; ``data``/``args``: the message's arguments."""
        if not valid_job_id(job_id):  # no row can have it: forged, and unsafe to log as is
            record_rejected("invalid-job-id", self.request, f"task {self.name} id {job_id!r}")
            return None
        if args:  # job messages carry keyword arguments only
            record_rejected("data-mismatch", self.request,
                            f"task {self.name} id {job_id}: positional arguments")
            return None
        with requeued_unless_claimed(f"job {job_id}"):
            won = lifecycle.claim(job_id, worker)
        if won is None:
            self._skip(job_id)
            return None
        if (won.queue, won.name) != (self.queue_name.value, self.job_name) or won.data != data:
            self._refuse_disagreeing(job_id, won)
            return None
        self.run_claimed(job_id, won)
        return None

    def run_claimed(self, job_id: str, won: lifecycle.Claim, batch: BatchRun | None = None,
                    ) -> None:
        """Run a job this worker claimed, from its row's data, and record how it ended.

        ``batch``: the job came in a batch (``tasks.worker.batch``). Its soft time
        limit is timed here, its completion is handed to the batch (written with
        the others), and a failure is recorded without being raised to Celery
        (the batch's other jobs go on).
        """
        data = won.data
        try:
            self.check_arguments(data)  # an old row, a changed processor: no attempt can pass
        except InvalidArgumentsError as exc:
            run_exc: Exception | None = exc
        else:
            run_exc = None
        job = JobContext(id=job_id, queue=self.queue_name.value, name=self.job_name, data=data,
                         attempts_made=won.attempts_made, max_attempts=won.max_attempts)
        if won.expires_at is not None and timezone.now() >= won.expires_at:
            self._cancel(job_id, won, f"expired at {won.expires_at.isoformat()}")
            return None
        logger.info("job %s active (attempt %d/%d)", job_id, won.attempts_made,
                    won.max_attempts, extra=self._extra(job_id))
        started = timezone.now()
        try:
            if run_exc is not None:
                raise run_exc
            if batch is None:
                result = self.run(job, **data)
            else:
                with batch.time_limited():
                    result = self.run(job, **data)
        except JobCancelled:
            self._cancel(job_id, won, "cancelled")
            return None
        except RateLimited as limited:
            until = self._hold(job_id, won, limited)
            if batch is not None:
                batch.held_until = until
            return None
        except Exception as exc:
            self._fail(job, won, timeouts.as_timeout(exc, self), started,
                       raise_to_celery=batch is None)
            return None
        if batch is not None and not won.continues:
            batch.completed(job_id, _jsonable(result), won)
            return None
        if self._complete(job_id, _jsonable(result), won):
            logger.info("job %s completed", job_id, extra=self._extra(job_id))
        else:
            logger.warning("job %s finished but was no longer active (cancelled or re-queued "
                           "meanwhile): result not recorded", job_id, extra=self._extra(job_id))
        return None

    def _complete(self, job_id: str, result: Any, won: lifecycle.Claim) -> bool:
        """Record the completion; a canvas job also starts what follows, in the same transaction."""
        if not won.continues:
            return lifecycle.complete(job_id, result, run=won)
        with transaction.atomic():
            done = lifecycle.complete(job_id, result, run=won)
            if done:
                canvas.after_success(job_id, won.canvas, won.group_id, result)
        return done

    def _hold(self, job_id: str, won: lifecycle.Claim, limited: RateLimited) -> datetime:
        """BullMQ's rateLimit: the queue waits on every worker, this job with it, no attempt
        used. Returns until when."""
        until = timezone.now() + timedelta(milliseconds=limited.delay_ms)
        presence.hold_queue(self.queue_name, until, by=f"job {job_id}")
        if lifecycle.hold(job_id, until, run=won):
            lifecycle.append_log(job_id, f"{limited}: the queue waits until {until.isoformat()}")
        logger.warning("job %s: %s; queue %s held until %s", job_id, limited,
                       self.queue_name.value, until.isoformat(), extra=self._extra(job_id))
        return until

    def _cancel(self, job_id: str, won: lifecycle.Claim, reason: str) -> None:
        """Cancelled by the processor, or expired before it ran: its canvas stops there."""
        with transaction.atomic():
            done = lifecycle.mark_cancelled(job_id, run=won)
            if done and reason != "cancelled":
                lifecycle.append_log(job_id, f"not run: {reason}")
            if done and won.continues:
                canvas.after_failure(job_id, won.canvas, won.group_id, reason)
        logger.info("job %s %s", job_id, reason, extra=self._extra(job_id))

    def _skip(self, job_id: str) -> None:
        """A delivery that must not run: a duplicate, a cancelled job, or a foreign message."""
        from tasks.models import Job

        if Job.objects.filter(pk=job_id).exists():
            logger.info("job %s delivered but not waiting (duplicate or cancelled): skipped",
                        job_id, extra=self._extra(job_id))
        else:
            record_rejected("no-job-record", self.request, f"task {self.name} id {job_id}")

    def _refuse_disagreeing(self, job_id: str, won: lifecycle.Claim) -> None:
        """A message whose task or arguments are not its row's: nothing runs, it is counted.

        The claim is given back (``lifecycle.release``) and the relay publishes
        the job again from its row, so a forged message can neither run other
        data under a real job's id nor take the job's run away.
        """
        if (won.queue, won.name) != (self.queue_name.value, self.job_name):
            reason, detail = "task-mismatch", f"row is {won.queue}.{won.name}"
        else:
            reason, detail = "data-mismatch", "keyword arguments differ from the row's data"
        lifecycle.release(job_id, run=won)
        lifecycle.append_log(job_id, f"a message for task {self.name} was rejected ({reason}); "
                                     "the job waits to be published again from its record")
        record_rejected(reason, self.request, f"task {self.name} id {job_id}: {detail}")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        """At a hard time limit Celery stops the pool process and calls this in the worker's
        main process: the run is recorded as a ``JobTimeoutError`` attempt (``timeouts``)."""
        if not isinstance(exc, timeouts.TimeLimitExceeded):
            return  # a failure the run itself recorded
        run = timeouts.timed_out_run(task_id, exc)
        if run is None:
            return
        job = JobContext(id=task_id, queue=run.queue, name=run.name, data=run.data or {},
                         attempts_made=run.attempts_made, max_attempts=run.max_attempts)
        error = timeouts.hard_error(exc)
        try:
            self._fail(job, run, error, run.started_at, trace="")
        except (Retry, timeouts.JobTimeoutError):
            pass  # what a run raises to Celery; here the pool already ended it

    def _fail(self, job: JobContext, won: lifecycle.Claim, exc: Exception, started: datetime,
              trace: str | None = None, raise_to_celery: bool = True) -> None:
        """Record a failed attempt: a retry after the backoff, or the final failure.

        ``raise_to_celery``: end by raising Celery's ``Retry`` or the error, so the
        task's state and events say how the attempt ended (not inside a batch).

        Whatever goes wrong here is recorded as this job's error too, never left
        to surface later as "worker lost": a backoff that cannot be computed
        (a custom strategy that raises, a row holding a bad backoff) fails the
        job now with both errors; a failure entry the database refuses is
        recorded again, reduced to the error's text.
        """
        now = timezone.now()
        trace = traceback.format_exc() if trace is None else trace
        entry = failure_entry(won.attempts_made, exc, trace, started, now)
        retry_in = None
        if self._retryable(exc) and won.attempts_made < won.max_attempts:
            try:
                delay_ms = next_delay_ms(won.backoff, won.attempts_made, self.backoff_strategy)
                retry_in = timedelta(milliseconds=delay_ms)
            except Exception as problem:
                entry["error"] = storable(f"{entry['error']} (not retried: computing its backoff "
                                          f"raised {type(problem).__name__}: {problem})",
                                          ERROR_MAX_CHARS)
                logger.exception("job %s: computing the backoff failed; failing it now", job.id,
                                 extra=self._extra(job.id))
        try:
            state = self._record_failure_reconnecting(job.id, entry, retry_in, now, won)
        except Exception as problem:
            logger.exception("job %s: recording its failure failed; recording it reduced",
                             job.id, extra=self._extra(job.id))
            entry = {**entry, "traceback": "", "error": storable(
                f"{entry['error']} (recording it in full raised {type(problem).__name__})",
                ERROR_MAX_CHARS)}
            retry_in = None
            state = self._record_failure(job.id, entry, None, now, won)
        if state == JobState.DELAYED:
            logger.warning("job %s failed attempt %d/%d, retrying in %.1fs: %s", job.id,
                           won.attempts_made, won.max_attempts, retry_in.total_seconds(),
                           one_line(entry["error"]), extra=self._extra(job.id))
            if raise_to_celery:
                raise Retry(exc=exc, when=now + retry_in)
        if state == JobState.FAILED:
            logger.error("job %s failed permanently after %d attempt(s): %s", job.id,
                         won.attempts_made, one_line(entry["error"]), extra=self._extra(job.id))
            self._call_failure_hook(job, exc)
            if raise_to_celery:
                raise exc

    def _record_failure(self, job_id: str, entry: dict, retry_in: timedelta | None, now: datetime,
                        won: lifecycle.Claim) -> str | None:
        """A failed attempt; the last one of a canvas job also runs its errbacks, atomically."""
        if not won.continues:
            return lifecycle.record_failure(job_id, entry, retry_in, now, run=won)
        with transaction.atomic():
            state = lifecycle.record_failure(job_id, entry, retry_in, now, run=won)
            if state == JobState.FAILED:
                canvas.after_failure(job_id, won.canvas, won.group_id, entry["error"])
        return state

    def _record_failure_reconnecting(self, job_id: str, entry: dict,
                                     retry_in: timedelta | None, now: datetime,
                                     won: lifecycle.Claim) -> str | None:
        """``_record_failure``, once more on a new connection when the database dropped this one.

        A connection terminated under the worker (a failover, ``pg_terminate_backend``)
        refused nothing: falling through to the reduced record would fail for good a job
        that had attempts left (found by the full-strength soak on PostgreSQL). The
        second try is safe: if the first committed after all, the job is no longer
        active in this run and nothing changes.
        """
        try:
            return self._record_failure(job_id, entry, retry_in, now, won)
        except (InterfaceError, OperationalError):
            if connection.in_atomic_block:
                raise
            logger.warning("job %s: the database connection failed while recording its "
                           "failure; recording it again on a new connection", job_id,
                           extra=self._extra(job_id))
            connection.close()
            return self._record_failure(job_id, entry, retry_in, now, won)

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


#: Longest error text and traceback kept per attempt (an exception's message can be megabytes).
ERROR_MAX_CHARS = 10_000
TRACEBACK_MAX_CHARS = 50_000


def failure_entry(attempt: int, exc: BaseException, trace: str, started: datetime,
                  failed: datetime) -> dict:
    """One attempt's error as stored: text the database accepts (no NUL, no lone surrogates)."""
    return {
        "attempt": attempt,
        "error": storable(f"{type(exc).__name__}: {exc}", ERROR_MAX_CHARS),
        "exception": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "traceback": storable(trace, TRACEBACK_MAX_CHARS),
        "started_at": started.isoformat(),
        "failed_at": failed.isoformat(),
    }


def _jsonable(value: Any) -> Any:
    """The result as stored: JSON the database accepts, else a bounded ``repr``."""
    try:
        encoded = json.dumps(value, allow_nan=False)
        if "\\u" in encoded:  # NUL and lone surrogates: PostgreSQL's jsonb refuses them
            if "\\u0000" in encoded:
                raise ValueError("NUL in the result")
            json.dumps(value, ensure_ascii=False).encode()  # raises on a lone surrogate
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return {"repr": storable(short_repr(value), ERROR_MAX_CHARS)}
    return value
