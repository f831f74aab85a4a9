"""Task names, routing and broker priority: mapped once, here.

A task registered as job ``send-welcome-email`` on queue ``email`` has the
Celery name ``email.send-welcome-email``; the prefix routes it.
"""

from __future__ import annotations

from typing import Any

from tasks.jobs.brokers import broker_kind
from tasks.jobs.config import PRIORITY_LEVELS, QUEUE_NAMES, JobPriority, QueueName
from tasks.jobs.errors import UnknownQueueError


def task_name(queue: QueueName | str, job_name: str) -> str:
    """The Celery name of job ``job_name`` on ``queue``: ``"<queue>.<job_name>"``."""
    return f"{getattr(queue, 'value', queue)}.{job_name}"


#: Ends the Celery name of a batched processor's batch task (``tasks.worker.batch``);
#: not a character a job name may hold.
BATCH_SUFFIX = "#batch"


def batch_task_name(job_task_name: str) -> str:
    """The Celery name of the batch task of ``"<queue>.<job_name>"``."""
    return f"{job_task_name}{BATCH_SUFFIX}"


def split_task_name(name: str) -> tuple[QueueName, str] | None:
    """``"email.send-welcome-email"`` -> (EMAIL, "send-welcome-email"); None if foreign."""
    prefix, _, job_name = name.partition(".")
    if not job_name or prefix not in QUEUE_NAMES:
        return None
    return QueueName(prefix), job_name


def parse_queue(value: Any) -> QueueName:
    """Accept a ``QueueName`` or its string value; refuse anything else."""
    try:
        return QueueName(value)
    except ValueError:
        raise UnknownQueueError(value, QUEUE_NAMES) from None


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict | None:
    """Celery router: send each task to the queue named by its prefix."""
    parsed = split_task_name(name)
    if parsed is None:
        return None
    return {"queue": parsed[0].value, "routing_key": parsed[0].value}


def broker_priority(priority: int, broker: str | Any) -> int:
    """Map ``JobPriority`` (1 first) to the native scale of a broker (URL or connection).

    Redis (kombu) pops priority 0 first: CRITICAL=1 -> 0 … BACKGROUND=5 -> 4.
    RabbitMQ delivers the highest number first (``x-max-priority`` = 5):
    CRITICAL=1 -> 5 … BACKGROUND=5 -> 1.
    """
    return native_priority(priority, broker_kind(broker).highest_priority_first)


def native_priority(priority: int, highest_first: bool) -> int:
    """``broker_priority`` for a broker known to deliver the highest number first (AMQP) or not."""
    level = int(JobPriority(priority))
    return PRIORITY_LEVELS + 1 - level if highest_first else level - 1
