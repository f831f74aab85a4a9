"""Django's task API on this service: a backend for ``django_tasks`` (``django.tasks``).

    TASKS = {
        "default": {
            "BACKEND": "tasks.integrations.django_tasks.IntelGraphTaskBackend",
            "OPTIONS": {
                "DEFAULT_QUEUE": "analytics",  # where queue "default" goes
                "MODULES": ["myapp.jobs"],  # where @task functions live (see below)
            },
        }
    }

A ``@task`` function enqueues as job ``django-task`` on the queue its
``queue_name`` names, through ``add_job``: a Job row written in the caller's
transaction and published after commit, so it gets the dashboard, retries of
transient errors, cancellation and durability like any other job. The worker
of that queue calls the function (``tasks/processors/django_task.py``).
Results are read back from the Job row.

Which functions can run: only ``@task`` functions this backend saw being
decorated (``validate_task`` runs at decoration) at module level, in this
process. The path in a job's data is looked up in that registry and nothing
is imported from it: a job naming ``os.system`` or any other importable path
is refused before an import could run module code. The worker imports the
modules listed in ``OPTIONS["MODULES"]`` (trusted settings) before looking a
path up; Celery's own autodiscovery imports each installed app's ``tasks``
module in workers too.

Priority: django-tasks runs larger numbers first (-100..100, 0 by default);
``job_priority`` maps the sign and the size onto ``JobPriority`` (see there).
``run_after`` becomes the job's delay, held in the database by the promoter.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import DEFAULT_TASK_QUEUE_NAME
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskError, TaskResult, TaskResultStatus
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued
from django_tasks.utils import normalize_json

from tasks.enqueue.api import add_job
from tasks.jobs.config import JobPriority, QueueName
from tasks.jobs.errors import InvalidArgumentsError, PayloadNotJSONError, error_class_path
from tasks.jobs.text import short_repr
from tasks.models import Job, JobState

#: The job name of the generic processor registered on every queue.
RUNNER_JOB_NAME = "django-task"

#: django-tasks priorities at or beyond this size leave the HIGH/LOW bands.
PRIORITY_EXTREME_FROM = 50

_STATUS = {
    JobState.WAITING: TaskResultStatus.READY,
    JobState.DELAYED: TaskResultStatus.READY,  # not due yet, or waiting to retry
    JobState.ACTIVE: TaskResultStatus.RUNNING,
    JobState.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobState.FAILED: TaskResultStatus.FAILED,
    JobState.CANCELLED: TaskResultStatus.FAILED,  # django.tasks has no cancelled status
}


def job_priority(priority: int) -> JobPriority:
    """Map a django-tasks priority (-100..100, larger first, 0 default) to ``JobPriority``.

    The sign says whether a task goes before or after the default, so any
    positive priority runs ahead of an undecorated task and any negative one
    behind it; the size picks the outer band:

    ==============  ============
    django-tasks    JobPriority
    ==============  ============
    50 .. 100       CRITICAL (1)
    1 .. 49         HIGH (2)
    0               NORMAL (3)
    -49 .. -1       LOW (4)
    -100 .. -50     BACKGROUND (5)
    ==============  ============
    """
    if priority >= PRIORITY_EXTREME_FROM:
        return JobPriority.CRITICAL
    if priority > 0:
        return JobPriority.HIGH
    if priority == 0:
        return JobPriority.NORMAL
    if priority > -PRIORITY_EXTREME_FROM:
        return JobPriority.LOW
    return JobPriority.BACKGROUND


#: Module path -> the ``@task`` decorated there (the latest decoration, as an import sees it).
_REGISTERED: dict[str, Task] = {}
_modules_loaded = False


def register(task: Task) -> None:
    """Record a module-level ``@task`` (called at decoration, by ``validate_task``)."""
    path = task.module_path
    if "<" not in path:  # ``<locals>``: not reachable by path, never run
        _REGISTERED[path] = task


def load_task_modules() -> None:
    """Import the modules every service backend lists in ``OPTIONS["MODULES"]`` (once)."""
    global _modules_loaded
    if _modules_loaded:
        return
    from django_tasks import task_backends

    for backend in task_backends.all():
        for module in getattr(backend, "modules", ()):
            importlib.import_module(module)
    _modules_loaded = True


def resolve_task(path: Any) -> Task:
    """The registered ``@task`` at ``path``; ``InvalidTaskError`` for anything else.

    ``path`` comes from a job's data: it is only looked up, never imported,
    so a job cannot make a process import (run) a module of its choosing or
    call a function that is not a decorated task.
    """
    if not isinstance(path, str):
        raise InvalidTaskError(f"task path {short_repr(path)} is not a string")
    task = _REGISTERED.get(path)
    if task is None:
        load_task_modules()
        task = _REGISTERED.get(path)
    if task is None:
        raise InvalidTaskError(
            f"{short_repr(path)} is not a registered @task: only module-level @task functions "
            "in modules the process imports (TASKS OPTIONS['MODULES']) run"
        )
    return task


def _module_level(task: Task) -> Any:
    """What ``task``'s own path names when imported (the path is the code's, not input)."""
    try:
        return import_string(task.module_path)
    except ImportError:
        return None


def delay_until(run_after: datetime | None) -> timedelta | None:
    """The time from now until ``run_after`` (zero when it has passed); None without one."""
    if run_after is None:
        return None
    return max(run_after - timezone.now(), timedelta(0))


class IntelGraphTaskBackend(BaseTaskBackend):
    """Enqueue ``django_tasks`` tasks as jobs of this service and read their results."""

    supports_defer = True
    supports_async_task = True  # the worker runs coroutines with async_to_sync
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        self.default_queue: str | None = self.options.get("DEFAULT_QUEUE")
        self.modules: list[str] = list(self.options.get("MODULES", []))
        if "QUEUES" not in params:
            self.queues = {queue.value for queue in QueueName}
            if self.default_queue is not None:
                self.queues.add(DEFAULT_TASK_QUEUE_NAME)

    # -- validation (at decoration, ``using()`` and enqueue) ---------------------

    def queue_for(self, queue_name: str) -> QueueName:
        """The declared queue a task's ``queue_name`` runs on."""
        name = queue_name
        if name == DEFAULT_TASK_QUEUE_NAME and self.default_queue is not None:
            name = self.default_queue
        try:
            return QueueName(name)
        except ValueError:
            known = ", ".join(queue.value for queue in QueueName)
            hint = (
                f"; set OPTIONS['DEFAULT_QUEUE'] of task backend {self.alias!r} to route "
                f"queue {DEFAULT_TASK_QUEUE_NAME!r}"
                if name == DEFAULT_TASK_QUEUE_NAME
                else ""
            )
            raise InvalidTaskError(f"queue {name!r} is not one of: {known}{hint}") from None

    def validate_task(self, task: Task) -> None:
        self.queue_for(task.queue_name)
        super().validate_task(task)
        register(task)

    def bind_arguments(self, task: Task, args: Sequence, kwargs: Mapping) -> dict[str, Any]:
        """Check the call fits the function and is JSON; return the job's data."""
        signature = inspect.signature(task.func)
        params = list(signature.parameters.values())
        if task.takes_context:
            params = params[1:]
        try:
            signature.replace(parameters=params).bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentsError(task.module_path, str(exc)) from None
        try:
            json_args, json_kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        except (TypeError, ValueError) as exc:
            raise PayloadNotJSONError(f"arguments of {task.module_path}: {exc}") from None
        return {
            "task": task.module_path,
            "args": json_args,
            "kwargs": json_kwargs,
            "queue_name": task.queue_name,
            "priority": task.priority,
        }

    # -- enqueue ----------------------------------------------------------------

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        queue = self.queue_for(task.queue_name)
        target = _module_level(task)
        if getattr(target, "func", None) is not task.func:
            raise InvalidTaskError(
                f"{task.module_path!r} names another object: keep each @task at module "
                "level under its function's name so the worker can import it"
            )
        data = self.bind_arguments(task, args, kwargs)
        job_id = add_job(
            queue,
            RUNNER_JOB_NAME,
            data,
            priority=job_priority(task.priority),
            delay=delay_until(task.run_after),
            attempts=1,  # Django's task API does not retry: a failure is the task's result
        )
        result = TaskResult(
            task=task,
            id=job_id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=data["args"],
            kwargs=data["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    # -- results ----------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        job = Job.objects.filter(pk=result_id, name=RUNNER_JOB_NAME).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        task = resolve_task(job.data["task"])
        try:  # the task as it was enqueued, not as it was decorated
            task = replace(
                task,
                backend=self.alias,
                queue_name=job.data.get("queue_name", task.queue_name),
                priority=job.data.get("priority", task.priority),
                run_after=(job.created_at + timedelta(milliseconds=job.delay_ms)
                           if job.delay_ms else None),
            )
        except InvalidTaskError:
            pass  # configuration changed since: report it as decorated
        return result_from_job(job, task, self.alias)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        for name in sorted(self.queues):
            try:
                self.queue_for(name)
            except InvalidTaskError as exc:
                yield checks.Error(
                    f"task backend {self.alias!r}: {exc}",
                    hint="List only declared queues in TASKS[...]['QUEUES'].",
                    id="tasks.E101",
                )


def result_from_job(job: Job, task: Task, backend: str) -> TaskResult:
    """A ``TaskResult`` that reads the Job row (status, times, errors, return value)."""
    status = _STATUS[JobState(job.state)]
    errors = [_task_error(entry) for entry in job.errors or []]
    if job.state == JobState.CANCELLED:
        errors.append(TaskError(exception_class_path="tasks.jobs.errors.JobCancelled",
                                traceback="cancelled by an operator"))
    result = TaskResult(
        task=task,
        id=job.id,
        status=status,
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.started_at,
        args=job.data.get("args", []),
        kwargs=job.data.get("kwargs", {}),
        backend=backend,
        errors=errors,
        worker_ids=[job.worker] * job.attempts_made if job.worker else [],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _task_error(entry: Mapping[str, Any]) -> TaskError:
    """An attempt's error entry as django-tasks reports it (class path + traceback)."""
    traceback = str(entry.get("traceback", ""))
    return TaskError(exception_class_path=error_class_path(dict(entry)),
                     traceback=traceback or str(entry.get("error")))
