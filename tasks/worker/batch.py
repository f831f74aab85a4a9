"""Batched execution: one broker message carries up to ``batch`` jobs of one processor.

Small jobs spend most of a worker's time in Celery's per-message path
(decode, strategy, pool dispatch, ack, events), not in their own body. A
processor declared with ``@processor(..., batch=N)`` gets a second Celery task,
``<queue>.<name>#batch`` (``tasks.jobs.routing.batch_task_name``); the
publisher (``tasks.enqueue.publishing``) puts up to N of its jobs of one
priority into one message for it. The worker then:

1. claims them with one statement (``lifecycle.claim_many``: each row waiting
   -> active, compare-and-set as for one job; a job already taken, cancelled
   or unknown is not claimed);
2. runs each in turn through the processor's own task (``JobTask.run_claimed``):
   its own attempt, progress, cancellation, expiry, backoff, failure hook;
3. records the completions together, one transaction every ``FLUSH_S`` and at
   the end (``lifecycle.complete_many``). Failures are recorded at once.

Per-job promises: each job's soft time limit is its own (a ``SIGALRM`` timer
around each job, raising ``SoftTimeLimitExceeded`` as Celery's pool would);
the batch's hard limit is the sum of its jobs' hard limits. A pool that runs
tasks off the main thread (threads, gevent) cannot time one job inside a
batch, so there the batch is not run: its jobs are published again one
message each, with a warning. A job with its own time limits or LIFO is never
put in a batch (``publishing.batches``).

A worker killed mid-batch leaves the claimed jobs active on its name: its own
orphan sweep (``tasks.worker.bootstep``; a batch request's ids count as held
while it runs) or the reconciler gives them back, and completions written are
never run again. A completion not yet written when the process died is a run
whose record was lost, exactly as for one job killed between its end and its
UPDATE: it runs again (at most ``FLUSH_S`` of finished work).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task

from tasks.enqueue.publishing import MESSAGE_FIELDS, message_from_values, publish
from tasks.jobs.errors import DirectCallRefused
from tasks.jobs.limits import MAX_BATCH
from tasks.jobs.spec import valid_job_id
from tasks.models import Job, JobState
from tasks.worker import lifecycle
from tasks.worker.rejections import record_rejected, requeued_unless_claimed

logger = logging.getLogger("tasks.jobs")

#: Completions of a batch are written at least this often (seconds), and at its end.
FLUSH_S = 0.1


class BatchRun:
    """One batch in progress: its unwritten completions, and whether its queue was held."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.done: list[tuple[str, Any, lifecycle.Claim]] = []
        self.first_done = 0.0
        self.held_until: datetime | None = None

    def completed(self, job_id: str, result: Any, run: lifecycle.Claim) -> None:
        if not self.done:
            self.first_done = time.monotonic()
        self.done.append((job_id, result, run))
        if time.monotonic() - self.first_done >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if not self.done:
            return
        done, self.done = self.done, []
        written = lifecycle.complete_many(done)
        if written < len(done):
            logger.warning("%d of %d job(s) of a batch finished but were no longer active "
                           "(cancelled or re-queued meanwhile): results not recorded",
                           len(done) - written, len(done))
        if logger.isEnabledFor(logging.INFO):
            for job_id, _result, _run in done:
                logger.info("job %s completed", job_id, extra=self.task._extra(job_id))

    @contextmanager
    def alarm(self) -> Iterator[None]:
        """The ``SIGALRM`` handler of the whole batch (main thread only): it raises
        ``SoftTimeLimitExceeded`` in the job running when its timer (``time_limited``) ends."""
        soft_s = self.task.soft_time_limit
        if not soft_s:
            yield
            return

        def expire(signum: int, frame: Any) -> None:
            raise SoftTimeLimitExceeded(f"soft time limit ({soft_s}s) exceeded")

        previous = signal.signal(signal.SIGALRM, expire)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    @contextmanager
    def time_limited(self) -> Iterator[None]:
        """The processor's soft time limit around one job (inside ``alarm``)."""
        soft_s = self.task.soft_time_limit
        if not soft_s:
            yield
            return
        signal.setitimer(signal.ITIMER_REAL, soft_s)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def can_time_each_job() -> bool:
    """True where a job inside a batch can be given its own soft time limit (main thread)."""
    return threading.current_thread() is threading.main_thread()


class BatchTask(Task):
    """The Celery task of a batched processor's messages: ``ids``, up to ``batch_size``."""

    abstract = True
    typing = False
    ignore_result = True
    #: The processor's own task (``<queue>.<name>``), which runs each job.
    job_task_name: ClassVar[str]
    batch_size: ClassVar[int]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        request = self.request
        if request.called_directly or request.is_eager:
            raise DirectCallRefused(self.name)
        ids = kwargs.get("ids")
        if args or set(kwargs) != {"ids"} or not _valid_ids(ids, self.batch_size):
            record_rejected("data-mismatch", request,
                            f"task {self.name} id {request.id}: not a list of up to "
                            f"{self.batch_size} job ids")
            return None
        single = self.app.tasks[self.job_task_name]
        if not can_time_each_job():
            _unbatch(ids, self.name)
            return None
        self.run_batch(single, ids, request.hostname or "")
        return None

    def run_batch(self, single: Any, ids: list[str], worker: str) -> None:
        with requeued_unless_claimed(f"a batch of {self.job_task_name}"):
            claims = lifecycle.claim_many(ids, worker)
        if len(claims) < len(ids):
            _not_claimed([job_id for job_id in ids if job_id not in claims], self)
        batch = BatchRun(single)
        order = [job_id for job_id in ids if job_id in claims]
        position = 0
        try:
            with batch.alarm():
                for position, job_id in enumerate(order):  # noqa: B007 (read after a raise)
                    won = claims[job_id]
                    if batch.held_until is not None:  # a job of it was told to slow down
                        lifecycle.hold(job_id, batch.held_until, run=won)
                        continue
                    if (won.queue, won.name) != (single.queue_name.value, single.job_name):
                        single._refuse_disagreeing(job_id, won)
                        continue
                    single.run_claimed(job_id, won, batch)
        except BaseException:
            _give_back_unrun(order[position + 1:], claims)
            raise
        finally:
            batch.flush()

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        """A batch stopped by its hard limit or a lost pool process: its jobs still active
        are the orphan sweep's (re-queued, as for any run whose process died)."""
        logger.warning("batch %s of %s ended by %s: its unfinished jobs are re-queued by the "
                       "orphan sweep", task_id, self.job_task_name, type(exc).__name__)


def _valid_ids(ids: Any, size: int) -> bool:
    return (isinstance(ids, list) and 0 < len(ids) <= min(size, MAX_BATCH)
            and all(isinstance(job_id, str) and valid_job_id(job_id) for job_id in ids))


def _not_claimed(ids: list[str], task: BatchTask) -> None:
    """Ids of the message not waiting: duplicates or cancelled (logged) or unknown (counted)."""
    known = set(Job.objects.filter(pk__in=ids).values_list("pk", flat=True))
    for job_id in ids:
        if job_id in known:
            logger.info("job %s delivered in a batch but not waiting (duplicate or cancelled): "
                        "skipped", job_id)
        else:
            record_rejected("no-job-record", task.request, f"task {task.name} id {job_id}")


def _give_back_unrun(ids: list[str], claims: dict[str, lifecycle.Claim]) -> None:
    """The batch stopped early (an error, a shutdown): its jobs not started wait again."""
    for job_id in ids:
        try:
            lifecycle.release(job_id, run=claims[job_id])
        except Exception:
            logger.exception("job %s: giving it back after its batch stopped failed; the "
                             "orphan sweep re-queues it", job_id)


def _unbatch(ids: list[str], name: str) -> None:
    """On a pool that cannot time one job in a batch: each job published on its own."""
    logger.warning("batch of %s on a pool without per-job time limits (not the main thread): "
                   "its %d job(s) published again one message each", name, len(ids))
    rows = Job.objects.filter(pk__in=ids, state=JobState.WAITING).values_list(*MESSAGE_FIELDS)
    publish([message_from_values(row) for row in rows], claimed=True, batch=False)
