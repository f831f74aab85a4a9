"""Declaring processors: ``@processor(queue, name)`` makes a ``JobTask`` named ``<queue>.<name>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task

from tasks.jobs.backoff import CustomStrategy
from tasks.jobs.config import QUEUE_PRESETS, QueueName
from tasks.jobs.errors import JobInputError, PermanentJobError
from tasks.jobs.routing import task_name
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
    **task_options: Any,
) -> Callable[[Callable[..., Any]], JobTask]:
    """Register ``fn(job, **data)`` as job ``name`` on ``queue``.

    The Celery task is named ``<queue>.<name>`` (stable: schedules in the
    database refer to it) and gets the queue preset's time limits.
    ``fail_on`` errors fail the job at once even if they look transient.
    ``check_data(data)`` runs at every enqueue and raises a ``JobInputError``
    for data the job must refuse (a webhook host not allowed, say).
    """
    preset = QUEUE_PRESETS[queue]
    refused = sorted(set(task_options) - TASK_OPTIONS)
    if refused:
        raise TypeError(
            f"@processor({queue.value!r}, {name!r}): Celery task options {refused} are not "
            "honoured by job records; retries are attempts/backoff and retry_on/fail_on, "
            f"results are always on record. Allowed: {', '.join(sorted(TASK_OPTIONS))}")

    def decorate(fn: Callable[..., Any]) -> JobTask:
        options = {
            "soft_time_limit": preset.soft_time_limit_s,
            "time_limit": preset.time_limit_s,
            **task_options,
        }
        return shared_task(
            base=JobTask,
            name=task_name(queue, name),
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

    return decorate
