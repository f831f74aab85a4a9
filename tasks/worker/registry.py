"""Declaring processors: ``@processor(queue, name)`` makes a ``JobTask`` named ``<queue>.<name>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task

from tasks.jobs.backoff import CustomStrategy
from tasks.jobs.config import QUEUE_PRESETS, QueueName
from tasks.jobs.errors import DirectCallRefused, JobInputError, PermanentJobError
from tasks.jobs.limits import MAX_BATCH
from tasks.jobs.routing import BATCH_SUFFIX, batch_task_name, task_name
from tasks.worker.batch import BatchTask
from tasks.worker.job import JobContext
from tasks.worker.task import RETRY_ANY, JobTask

#: Celery task options a processor may set: its time limits (instead of the queue
#: preset's) and Celery's per-worker rate limit. Celery's retry options
#: (autoretry_for, max_retries, retry_backoff …) are refused: a job's retries are
#: its attempts and backoff.
TASK_OPTIONS = frozenset({"soft_time_limit", "time_limit", "rate_limit"})


def processor(
    queue: QueueName,
    name: str,
    *,
    retry_on: tuple[type[BaseException], ...] = RETRY_ANY,
    fail_on: tuple[type[BaseException], ...] = (),
    backoff_strategy: CustomStrategy | None = None,
    failure_hook: Callable[[JobContext, BaseException], None] | None = None,
    check_data: Callable[[dict], None] | None = None,
    batch: int | None = None,
    **task_options: Any,
) -> Callable[[Callable[..., Any]], JobTask]:
    """Register ``fn(job, **data)`` as job ``name`` on ``queue``.

    The Celery task is named ``<queue>.<name>`` (stable: schedules in the
    database refer to it) and gets the queue preset's time limits.
    ``fail_on`` errors fail the job at once even if they look transient.
    ``check_data(data)`` runs at every enqueue and raises a ``JobInputError``
    for data the job must refuse (a webhook host not allowed, say).
    ``batch=N`` (2 to ``MAX_BATCH``): up to N of its jobs of one priority travel
    in one broker message and are claimed and recorded together
    (``tasks.worker.batch``); for many small jobs.
    """
    preset = QUEUE_PRESETS[queue]
    refused = sorted(set(task_options) - TASK_OPTIONS)
    if refused:
        raise TypeError(
            f"@processor({queue.value!r}, {name!r}): Celery task options {refused} are not "
            "honoured by job records; retries are attempts/backoff and retry_on/fail_on, "
            f"results are always on record. Allowed: {', '.join(sorted(TASK_OPTIONS))}")

    if BATCH_SUFFIX[0] in name:
        raise TypeError(f"@processor({queue.value!r}, {name!r}): a job name may not contain "
                        f"{BATCH_SUFFIX[0]!r} (it names batch tasks)")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 2 <= batch <= MAX_BATCH:
            raise TypeError(f"@processor({queue.value!r}, {name!r}): batch must be an int "
                            f"from 2 to {MAX_BATCH}, not {batch!r}")
        if "rate_limit" in task_options:
            raise TypeError(f"@processor({queue.value!r}, {name!r}): Celery's rate_limit "
                            "counts messages, and a batch is one message for many jobs: use "
                            "the queue's or the job's rate limit (job_rate_limits) instead")

    def decorate(fn: Callable[..., Any]) -> JobTask:
        options = {
            "soft_time_limit": preset.soft_time_limit_s,
            "time_limit": preset.time_limit_s,
            **task_options,
        }
        single = shared_task(
            base=JobTask,
            name=task_name(queue, name),
            batch_size=batch or 0,
            queue=queue.value,
            queue_name=queue,
            job_name=name,
            retry_on=retry_on,
            fail_on=(PermanentJobError, JobInputError, *fail_on),
            backoff_strategy=staticmethod(backoff_strategy) if backoff_strategy else None,
            failure_hook=staticmethod(failure_hook) if failure_hook else None,
            data_check=staticmethod(check_data) if check_data else None,
            **options,
        )(fn)
        if batch:
            _register_batch_task(single, batch, options)
        return single

    return decorate


def _register_batch_task(single: JobTask, size: int, options: dict) -> None:
    """The batch task of ``single``: its messages carry up to ``size`` job ids.

    Its hard time limit is the sum of its jobs' (each job's soft limit is
    timed inside the batch); Celery's soft limit would interrupt whichever
    job runs when the batch's time is up, so the batch has none.
    """
    hard = options.get("time_limit")

    def run_batch(ids: list[str]) -> None:  # Celery calls BatchTask.__call__, not this
        raise DirectCallRefused(single.name)

    shared_task(
        base=BatchTask,
        name=batch_task_name(single.name),
        queue=single.queue_name.value,
        job_task_name=single.name,
        batch_size=size,
        time_limit=hard * size if hard else None,
        soft_time_limit=None,
    )(run_batch)
