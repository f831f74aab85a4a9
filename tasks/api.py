"""The job API: ``add_job``, ``add_bulk``. Validate everything, then record and publish."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tasks.config import JobPriority, QueueName
from tasks.enqueue import enqueue, enqueue_many
from tasks.registry import get_task
from tasks.routing import parse_queue
from tasks.spec import JobSpec, build_spec, parse_data


def _spec(queue: Any, name: Any, data: Any, options: Mapping[str, Any]) -> JobSpec:
    queue_name = parse_queue(queue)
    task = get_task(queue_name, name)
    data = parse_data(data)
    task.bind_data(kwargs=data)  # the data must fit the processor's parameters
    return build_spec(queue_name, name, data, **options)


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
) -> str:
    """Enqueue job ``name`` on ``queue`` with ``data`` as its keyword arguments.

    ``delay`` is seconds or a ``timedelta``; ``backoff`` is
    ``{"type": "exponential"|"fixed"|"custom", "delay": ms}``. Returns the job
    id (the existing one when ``job_id`` is already taken). Raises a
    ``JobInputError`` subclass, with nothing written, on bad input.
    """
    spec = _spec(
        queue,
        name,
        data,
        {"priority": priority, "delay": delay, "attempts": attempts,
         "backoff": backoff, "job_id": job_id},
    )
    return enqueue(spec)


def add_bulk(jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Enqueue many jobs in one transaction and one pipelined publish.

    Each item: ``{"queue", "name", "data", **options}`` with the options of
    ``add_job``. Every item is validated before anything is written.
    """
    specs = []
    for item in jobs:
        item = dict(item)
        queue, name, data = item.pop("queue", None), item.pop("name", None), item.pop("data", None)
        specs.append(_spec(queue, name, data, item))
    return enqueue_many(specs)
