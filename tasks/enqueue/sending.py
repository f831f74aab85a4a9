"""Celery's own way of publishing a job's message: the stock path, always correct.

``publishing.publish`` uses it when the fast paths are off or fell back
(``tasks.fastpath``). Each message is Celery's ``Task.apply_async`` with the
job id as the task id, on a producer kept per channel; a chunk is one kombu
``Producer.batch()`` where the transport supports it (one pipelined round
trip on Redis, publisher confirms on RabbitMQ).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.app.task import Task
from kombu import Producer

from tasks.jobs.brokers import broker_kind
from tasks.jobs.routing import native_priority

logger = logging.getLogger("tasks.enqueue.publishing")

#: The parts of a publish retry policy that ``Connection.ensure_connection`` takes.
_CONNECT_POLICY = ("max_retries", "interval_start", "interval_step", "interval_max")
#: Channel attribute: the producer kept for it (``producer_for``).
_PRODUCER = "_intelgraph_producer"


def producer_for(app: Celery, connection: Any) -> Producer:
    """A producer on ``connection``'s default channel, made once per channel.

    Celery's producer pool revives a pooled producer on every acquire; this
    one holds nothing but its channel, so it is kept on the channel (a
    reconnect makes a new channel, and with it a new producer). A connection
    that is down is retried as Celery's own publish would
    (``task_publish_retry_policy``), not with the transport's default 2 s
    wait: the row is left for the relay, so the caller need not wait.
    """
    if not connection.connected:
        policy = app.conf.task_publish_retry_policy or {}
        connection.ensure_connection(**{key: policy[key] for key in _CONNECT_POLICY
                                        if key in policy})
    channel = connection.default_channel
    producer = channel.__dict__.get(_PRODUCER)
    if producer is None:
        producer = app.amqp.Producer(channel, auto_declare=False)
        channel.__dict__[_PRODUCER] = producer
    return producer


class StockSender:
    """Publishes job messages by Celery's ``apply_async``; same interface as ``FastSender``."""

    def __init__(self, app: Celery, producer: Producer, batched: bool) -> None:
        self.app = app
        self.producer = producer
        self.highest_first = broker_kind(producer.connection).highest_priority_first
        self.batching = batched and producer.supports_batch_publish

    @contextmanager
    def chunk(self) -> Iterator[None]:
        """Messages sent inside go out together when it closes, where the transport batches."""
        if not self.batching:
            yield
            return
        with self.producer.batch(max_size=1_000_000):
            yield

    def send(self, job_id: str, task_name: str, queue: str, data: dict, priority: int,
             data_json: str | None = None, *, limits: tuple | None = None,
             lifo: bool = False) -> None:
        """``limits``: the job's own ``(hard, soft)`` seconds (Celery's ``timelimit`` header)."""
        options: dict[str, Any] = {"retry": False} if self.batching else {}
        if limits is not None:
            options["time_limit"], options["soft_time_limit"] = limits
        if lifo:
            published_fifo(job_id, "the stock publish path (kombu) adds every message at the back")
        Task.apply_async(
            self.app.tasks[task_name], args=(), kwargs=data, task_id=job_id, queue=queue,
            routing_key=queue, priority=native_priority(priority, self.highest_first),
            producer=self.producer, **options,
        )  # fmt: skip


def published_fifo(job_id: str, why: str) -> None:
    """A LIFO job accepted at its add (``tasks.enqueue.lifo``) that a later publish cannot honour."""
    logger.warning("job %s asked for LIFO but goes to the back of its priority: %s", job_id, why)
