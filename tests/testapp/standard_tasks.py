"""``django_tasks`` functions used by the Django task API tests.

Decorated with the defaults (queue ``default``, priority 0) so this module
imports under any ``TASKS`` setting, including the worker's; the tests pick
queues and priorities with ``.using()`` under the service backend.
"""

from __future__ import annotations

import os

from django_tasks import TaskContext, task

from tests.testapp.models import Execution


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def record(key: str) -> dict:
    """One ledger row per execution, so a test can count runs."""
    Execution.objects.create(key=key, job_id="django-task", worker_pid=os.getpid())
    return {"key": key, "pid": os.getpid()}


@task(takes_context=True)
def whoami(context: TaskContext, label: str) -> dict:
    return {"label": label, "id": context.task_result.id, "attempt": context.attempt}


@task()
def fail(message: str) -> None:
    raise LookupError(message)


@task()
async def double(x: int) -> int:
    return 2 * x


@task()
def returns_object() -> object:
    return object()


def not_a_task() -> None:
    """A plain function: the worker must refuse to run it."""
