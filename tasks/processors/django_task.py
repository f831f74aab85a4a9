"""The worker side of Django's task API: one generic ``django-task`` job per queue.

``tasks.integrations.django_tasks`` enqueues ``@task`` functions as this job with
the function's module path and its JSON arguments; the worker of the queue
imports the function and calls it. The job is an ordinary job: claimed once,
transient errors retried with the queue's backoff, others failed at once,
the return value stored as the job's result.
"""

from __future__ import annotations

from typing import Any

from django_tasks.base import TaskContext, TaskResultStatus
from django_tasks.exceptions import InvalidTaskError
from django_tasks.utils import normalize_json

from tasks.integrations.django_tasks import RUNNER_JOB_NAME, resolve_task, result_from_job
from tasks.jobs.config import QueueName
from tasks.jobs.errors import InvalidArgumentsError, PermanentJobError
from tasks.models import Job
from tasks.worker.job import JobContext
from tasks.worker.registry import processor


def run_django_task(
    job: JobContext,
    task: str,
    args: list | None = None,
    kwargs: dict | None = None,
    queue_name: str | None = None,
    priority: int = 0,
) -> Any:
    """Call the registered ``@task`` at ``task``; its return value is the job's result.

    ``queue_name`` and ``priority`` are the values the task was enqueued with,
    kept so ``get_result`` can rebuild the task; routing already used them.
    """
    try:
        target = resolve_task(task)
    except InvalidTaskError as exc:
        raise PermanentJobError(str(exc)) from None
    call_args = list(args or [])
    if target.takes_context:
        call_args.insert(0, TaskContext(task_result=_running_result(job, target)))
    value = target.call(*call_args, **(kwargs or {}))
    try:
        return normalize_json(value)
    except (TypeError, ValueError) as exc:
        raise PermanentJobError(f"return value of {task} is not JSON: {exc}") from None


def _running_result(job: JobContext, target) -> Any:
    """The running task's result for ``TaskContext`` (``attempt`` = this attempt)."""
    row = Job.objects.filter(pk=job.id).first() if job.attached else None
    if row is None:  # called directly (unit tests): an unsaved stand-in
        row = Job(id=job.id, queue=job.queue, name=job.name, data=job.data,
                  attempts_made=job.attempts_made, worker="direct")
    result = result_from_job(row, target, target.backend)
    object.__setattr__(result, "status", TaskResultStatus.RUNNING)
    return result


def _check_registered(data: dict) -> None:
    """At enqueue: the path must name a registered ``@task`` (looked up, not imported)."""
    try:
        resolve_task(data.get("task"))
    except InvalidTaskError as exc:
        raise InvalidArgumentsError(RUNNER_JOB_NAME, str(exc)) from None


#: One registered processor per declared queue, ``<queue>.django-task``.
RUNNERS = {queue: processor(queue, RUNNER_JOB_NAME, check_data=_check_registered)(run_django_task)
           for queue in QueueName}
