"""Celery task messages for job ids, built from one template per task.

Celery's ``send_task`` re-reads its configuration, routes, builds protocol-2
headers and ``saferepr``s the arguments on every call: measured at ~3× the
cost of the pipelined publish it ends in. The template is made by that very
path (``Task.apply_async`` into a recording producer), once per task and
thread and app, so its headers, properties, routing and retry policy are
exactly Celery's; each message then only swaps in its id, kwargs and priority.
A job enqueued from inside a running task gets a fresh template (its
``parent_id``/``root_id`` name that task).

On Redis a chunk of messages goes out as the ``LPUSH``es of one pipeline
(a single message: one ``LPUSH``), each message made by the same kombu calls
``Producer.publish`` makes (serialise, ``prepare_message``, routing,
priority list), but without its per-message dispatch through the batch
machinery or, for a single message, its retry wrapper and a new redis-py
client per call: together they measured ~3× the ``LPUSH`` itself. A failed
push is not retried here: the row stays for the relay or the reconciler
(``tasks.publishing``), so a caller never waits on a dead broker. Queues are
declared once per channel. Other transports use ``Producer.publish`` and
``Producer.batch()`` (AMQP: with publisher confirms).

When anything listens to ``before_task_publish``/``after_task_publish``
(tracing, for instance) every message takes Celery's full path, so the
listeners see each one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals
from celery.app.task import Task
from kombu import Producer
from kombu.entity import maybe_delivery_mode
from kombu.utils.json import dumps as kombu_dumps

from tasks.broker_clients import client_for
from tasks.routing import native_priority

#: Channel attribute: the tasks whose queues were declared on it (a new channel,
#: after a reconnect, declares again).
_DECLARED = "_intelgraph_declared"
#: The parts of a publish retry policy that ``Connection.ensure_connection`` takes.
_CONNECT_POLICY = ("max_retries", "interval_start", "interval_step", "interval_max")
#: Channel attribute: the producer kept for it (``producer_for``).
_PRODUCER = "_intelgraph_producer"
#: The id of the template message: replaced by each job's id.
_TEMPLATE_ID = "tasks.wire:template"
#: Celery's ``argsrepr``/``kwargsrepr`` limit (``task_protocol`` 2, display only).
_REPR_MAX = 1024
#: ``Producer.publish`` arguments that are not message properties.
_PUBLISH_ARGS = frozenset({
    "exchange", "routing_key", "serializer", "compression", "retry", "retry_policy",
    "delivery_mode", "headers", "timeout", "confirm_timeout", "priority", "declare",
    "mandatory", "immediate", "expiration", "content_type", "content_encoding",
})


@dataclass(frozen=True)
class _Template:
    body_tail: tuple  # (embed,) of Celery's (args, kwargs, embed) body
    options: dict  # what Celery passed to ``Producer.publish`` besides the body
    declare: tuple  # the queue Celery declares before publishing (cached per channel)


class _Recorder:
    """Stands in for a producer: keeps what Celery would publish instead of sending it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.published: tuple[Any, dict] | None = None

    def publish(self, body: Any, **options: Any) -> None:
        self.published = (body, options)


#: (app, broker, task, process, thread, batched) -> template (Celery's ``origin``
#: is per process, ``reply_to`` per thread).
_TEMPLATES: dict[tuple, _Template] = {}


def producer_for(app: Celery, connection: Any) -> Producer:
    """A producer on ``connection``'s default channel, made once per channel.

    Celery's producer pool revives a pooled producer on every acquire (a
    connection from the pool, a copy of its exchange bound to the channel):
    ~20 µs per ``add_job``, as much as building the message. The producer
    holds nothing but its channel, so it is kept on the channel (a
    reconnect makes a new channel, and with it a new producer).

    A connection that is down is retried as Celery's own publish would
    (``task_publish_retry_policy``), not with the transport's default 2 s
    wait: the row is left for the relay, so the caller need not wait.
    """
    if not connection.connected:
        policy = app.conf.task_publish_retry_policy or {}
        connection.ensure_connection(**{key: policy[key] for key in _CONNECT_POLICY if key in policy})
    channel = connection.default_channel
    producer = channel.__dict__.get(_PRODUCER)
    if producer is None:
        producer = app.amqp.Producer(channel, auto_declare=False)
        channel.__dict__[_PRODUCER] = producer
    return producer


class MessageBuilder:
    """Publishes job messages on ``producer``; one per ``publish()`` call."""

    def __init__(self, app: Celery, producer: Producer, batched: bool) -> None:
        """``batched``: every ``send`` happens inside ``producer.batch()`` on a transport that buffers."""
        self.app = app
        self.producer = producer
        # Read off the producer's connection: ``app.conf.broker_url`` is a
        # chained-settings lookup (~10 µs) and this runs for every ``add_job``.
        connection = producer.connection
        self.broker = (connection.transport_cls, connection.hostname, connection.port,
                       connection.virtual_host)
        self.highest_first = connection.transport.driver_type == "amqp"
        self.batched = batched
        self.batching = batched and producer.supports_batch_publish
        self.hooked = bool(
            signals.before_task_publish.receivers or signals.after_task_publish.receivers
        )
        self._templates: dict[str, _Template] = {}
        self._pipeline: Any = None  # the Redis pipeline (or client) of the open chunk
        # Inside a task, messages name it as their parent: no shared templates then.
        self._shared = app.current_worker_task is None

    @contextmanager
    def chunk(self) -> Iterator[None]:
        """Messages sent inside go out together when it closes (one round trip on Redis).

        A failure while sending raises from here and none of the chunk's
        messages count as sent (some may have been: delivery is uncertain).
        """
        channel = self.producer.channel
        if not hasattr(channel, "_q_for_pri"):  # not kombu's Redis channel
            if not self.batching:
                yield
                return
            with self.producer.batch(max_size=1_000_000):
                yield
            return
        client = client_for(channel)
        if not self.batched:  # one message: one LPUSH, no pipeline to set up
            self._pipeline = client
            try:
                yield
            finally:
                self._pipeline = None
            return
        with client.pipeline(transaction=False) as pipeline:
            self._pipeline = pipeline
            try:
                yield
                pipeline.execute()
            finally:
                self._pipeline = None

    def send(self, job_id: str, task_name: str, queue: str, data: dict, priority: int) -> None:
        """Publish one job's message (buffered inside ``chunk()``)."""
        priority = native_priority(priority, self.highest_first)
        task = self.app.tasks[task_name]
        if self.hooked:
            Task.apply_async(
                task, args=(), kwargs=data, task_id=job_id, queue=queue, routing_key=queue,
                priority=priority, producer=self.producer,
            )  # fmt: skip
            return
        template = self._templates.get(task_name) or self._template(task, queue)
        options = dict(template.options)
        headers = dict(options["headers"])
        headers["id"] = job_id
        if headers.get("root_id") == _TEMPLATE_ID:
            headers["root_id"] = job_id
        kwargsrepr = repr(data)
        headers["kwargsrepr"] = kwargsrepr if len(kwargsrepr) <= _REPR_MAX else (
            kwargsrepr[:_REPR_MAX - 3] + "..."
        )
        options["headers"] = headers
        options["correlation_id"] = job_id
        options["priority"] = priority
        options["routing_key"] = queue
        body = ((), data, *template.body_tail)
        if (self._pipeline is not None and not options.get("exchange")
                and queue not in (getattr(self.producer.channel, "_expires", None) or ())):
            declared = self.producer.channel.__dict__.setdefault(_DECLARED, set())
            if task_name not in declared:  # Celery: a cache lookup per message
                for entity in template.declare:
                    self.producer.maybe_declare(entity)
                declared.add(task_name)
            self._push(body, options)
        else:
            # Declared within the publish's own retry, as Celery does: a second
            # retry loop around the declaration doubled add_job's wait on a dead broker.
            self.producer.publish(body, declare=list(template.declare), **options)

    def _push(self, body: tuple, options: dict) -> None:
        """What ``Producer.publish`` → ``Channel._put`` do for the anonymous exchange, buffered."""
        producer, channel = self.producer, self.producer.channel
        headers = options["headers"]
        payload, content_type, content_encoding = producer._prepare(
            body, options.get("serializer"), None, None, options.get("compression"), headers
        )
        properties = {k: v for k, v in options.items() if k not in _PUBLISH_ARGS}
        properties["delivery_mode"] = maybe_delivery_mode(
            options.get("delivery_mode") or producer.exchange.delivery_mode
        )
        message = channel.prepare_message(
            payload, options["priority"], content_type, content_encoding, headers, properties
        )
        queue = options["routing_key"]
        channel._inplace_augment_message(message, "", queue)
        key = channel._q_for_pri(queue, channel._get_message_priority(message, reverse=False))
        self._pipeline.lpush(key, kombu_dumps(message))

    def _template(self, task: Task, queue: str) -> _Template:
        key = (id(self.app), self.broker, task.name, os.getpid(), threading.get_ident(),
               self.batching)
        template = _TEMPLATES.get(key) if self._shared else None
        if template is None:
            template = self._record(task, queue)
            if self._shared:
                _TEMPLATES[key] = template
        self._templates[task.name] = template
        return template

    def _record(self, task: Task, queue: str) -> _Template:
        recorder = _Recorder(self.producer.connection)
        Task.apply_async(
            task, args=(), kwargs={}, task_id=_TEMPLATE_ID, queue=queue, routing_key=queue,
            priority=0, producer=recorder,
        )  # fmt: skip
        assert recorder.published is not None
        body, options = recorder.published
        declare = tuple(options.pop("declare", None) or ())
        if self.batching:
            # Inside a batch ``publish`` only buffers: nothing to retry. The
            # pipeline's flush is the send, and a failed flush goes to the relay.
            options["retry"] = False
        return _Template(body_tail=tuple(body[2:]), options=options, declare=declare)
