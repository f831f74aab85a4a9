"""The job API: ``add_job``, ``add_bulk``. Validate everything, then record and publish."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tasks.enqueue.records import enqueue, enqueue_many
from tasks.enqueue.task import get_task
from tasks.jobs.config import JobPriority, QueueName
from tasks.jobs.routing import parse_queue
from tasks.jobs.spec import JobSpec, build_spec, encode_data


def job_spec(queue: Any, name: Any, data: Any, options: Mapping[str, Any],
             tasks: dict | None = None) -> JobSpec:
    """A validated ``JobSpec`` (nothing written). ``tasks``: (queue, name) -> task already
    looked up by this call (``add_bulk``)."""
    cacheable = tasks is not None and isinstance(queue, str) and isinstance(name, str)
    task = tasks.get((queue, name)) if cacheable else None
    queue_name = parse_queue(queue)
    if task is None:
        task = get_task(queue_name, name)
        if cacheable:
            tasks[(queue, name)] = task
    data, data_json = encode_data(data)
    task.check_arguments(data)
    task.check_data(data)
    return build_spec(queue_name, name, data, data_json=data_json,
                      task_time_limit_s=task.time_limit, **options)


def add_job(
    queue: QueueName | str,
    name: str,
    data: Mapping[str, Any] | None = None,
    *,
    priority: JobPriority | int | None = None,
    delay: Any = None,
    attempts: int | None = None,
    backoff: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    remove_on_complete: Any = None,
    remove_on_fail: Any = None,
    timeout: Any = None,
    soft_timeout: Any = None,
    lifo: bool | None = None,
    unique_for: Any = None,
    unique_key: str | None = None,
    debounce: Any = None,
) -> str:
    """Enqueue job ``name`` on ``queue`` with ``data`` as its keyword arguments.

    ``delay`` is milliseconds or a ``timedelta``; ``backoff`` is
    ``{"type": "exponential"|"fixed"|"custom", "delay": ms}``;
    ``remove_on_complete``/``remove_on_fail`` are BullMQ's (``True``, ``False``, a
    count, or ``{"age": ms, "count": n}``; default: the queue's preset).
    ``timeout``/``soft_timeout`` (ms or timedelta): the job's own hard and soft
    time limits (``tasks.jobs.timeouts``). ``lifo``: taken before the other
    waiting jobs of its priority (Redis; refused where it cannot be honoured).
    ``unique_for`` (ms or timedelta): an add with the same queue, name and data
    (or ``unique_key``) within it returns the first job's id and adds nothing;
    ``debounce``: the job waits that long, and an add with the same queue and
    name (or ``unique_key``) before it starts replaces its data and moves its
    start (``tasks.jobs.windows``). Returns the job id (the existing one when
    ``job_id`` is already taken or a window holds one). Raises a
    ``JobInputError`` subclass, with nothing written, on bad input.
    """
    spec = job_spec(
        queue,
        name,
        data,
        {"priority": priority, "delay": delay, "attempts": attempts,
         "backoff": backoff, "job_id": job_id, "remove_on_complete": remove_on_complete,
         "remove_on_fail": remove_on_fail, "timeout": timeout, "soft_timeout": soft_timeout,
         "lifo": lifo, "unique_for": unique_for, "unique_key": unique_key,
         "debounce": debounce},
    )
    return enqueue(spec)


def add_bulk(jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Enqueue many jobs in one transaction and one pipelined publish.

    Each item: ``{"queue", "name", "data", **options}`` with the options of
    ``add_job``. Every item is validated before anything is written.
    """
    specs = []
    tasks: dict = {}
    for item in jobs:
        item = dict(item)
        queue, name, data = item.pop("queue", None), item.pop("name", None), item.pop("data", None)
        specs.append(job_spec(queue, name, data, item, tasks))
    return enqueue_many(specs)
