"""What a worker runs: job tasks only, each only from its record.

Anyone who can write to the broker can name any registered task. Celery
registers its own (``celery.starmap``, ``celery.map``, ``celery.chunks``,
``celery.group``, ``celery.chain``, ``celery.chord``, ``celery.chord_unlock``,
``celery.accumulate``, ``celery.backend_cleanup``); the first three call a
task as a plain function, which bypassed the job record entirely. The service
uses none of them (no canvas; ``result_expires`` off, so beat schedules no
``backend_cleanup``), so a worker runs only tasks declared with ``@processor``;
any other name is
rejected and counted like the other foreign messages (``RejectedMessage``,
reason ``not-a-job-task``). Flower's send-task and a beat schedule naming
another task end here too.

A job task itself (``tasks.worker.task.JobTask``) refuses to run its
processor when called directly inside a worker process, and runs the claimed
row's data, not the message's (see there).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from tasks.jobs.text import one_line
from tasks.worker.rejections import record_rejected

logger = logging.getLogger("tasks.worker.admission")

#: Reason recorded for a message naming a registered task that is not a job.
NOT_A_JOB_TASK = "not-a-job-task"

_in_worker = False


@signals.worker_init.connect
@signals.worker_process_init.connect
def _mark_worker_process(**kwargs: Any) -> None:
    """Set in the worker's main process (before its pool forks) and in each pool process."""
    global _in_worker
    _in_worker = True


def in_worker() -> bool:
    """True inside a Celery worker process (main or pool child), False in tests and web."""
    return _in_worker


def is_job_task(task: Any) -> bool:
    """A processor's task, or the batch task of a batched processor."""
    from tasks.worker.batch import BatchTask
    from tasks.worker.task import JobTask  # the task class imports this module

    return isinstance(task, JobTask | BatchTask)


def refuse_non_job_tasks(consumer: Any) -> list[str]:
    """Make every registered task that is not a job task refuse its messages.

    Called by ``tasks.worker.bootstep`` at each consumer start, after Celery
    built the strategies (one per registered task). Returns the names refused.
    """
    refused = []
    for name in list(consumer.strategies):
        if not is_job_task(consumer.app.tasks.get(name)):
            consumer.strategies[name] = _refusing(name, consumer)
            refused.append(name)
    if refused:
        logger.info("not running (rejected and counted if received): %s", ", ".join(sorted(refused)))
    return refused


def _refusing(name: str, consumer: Any):
    def refuse(message, payload, ack, reject, callbacks, *args: Any, **kwargs: Any) -> None:
        headers = getattr(message, "headers", None) or {}
        record_rejected(NOT_A_JOB_TASK, message,
                        f"task {one_line(name)!r} id {one_line(str(headers.get('id')))!r}: "
                        "only job tasks run on this worker")
        # As Celery does for a task it does not know: dropped, not redelivered.
        message.reject_log_error(logger, consumer.connection_errors)

    return refuse
