"""Celery task messages for job ids, built from one template per task.

Celery's ``send_task`` re-reads its configuration, routes, builds protocol-2
headers and ``saferepr``s the arguments on every call: measured at ~3× the
cost of the pipelined publish it ends in. The template is made by that very
path (``Task.apply_async`` into a recording producer), once per task and
thread and app, so its headers, properties, routing and retry policy are
exactly Celery's; each message then only swaps in its id, kwargs and priority.
A job enqueued from inside a running task gets a fresh template (its
``parent_id``/``root_id`` name that task).

On Redis a chunk of messages goes out as one ``LPUSH`` per list (priority
level) with all of its messages, in one pipeline; each payload is rendered
from a frozen kombu message (``tasks.fastpath.redis_payload``), without kombu's
per-message dispatch through its batch machinery or, for a single message,
its retry wrapper and a new redis-py client per call: together they
measured ~3× the ``LPUSH`` itself. A failed push is not retried here: the
row stays for the relay or the reconciler (``tasks.enqueue.publishing``), so a
caller never waits on a dead broker. Queues are declared once per channel.
Other transports use ``Producer.publish`` and ``Producer.batch()`` (AMQP:
with publisher confirms).

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

from tasks.fastpath.broker_clients import client_for
from tasks.fastpath.redis_payload import REPR_MAX, STAND_IN_ID, FrozenPayload
from tasks.jobs.brokers import broker_kind
from tasks.jobs.routing import native_priority

#: Channel attribute: the tasks whose queues were declared on it (a new channel,
#: after a reconnect, declares again).
_DECLARED = "_intelgraph_declared"
#: The parts of a publish retry policy that ``Connection.ensure_connection`` takes.
_CONNECT_POLICY = ("max_retries", "interval_start", "interval_step", "interval_max")
#: Channel attribute: (template, queue) -> its ``FrozenPayload``, or None.
_FROZEN = "_intelgraph_frozen"
#: Channel attribute: the producer kept for it (``producer_for``).
_PRODUCER = "_intelgraph_producer"
#: The id of the template message: replaced by each job's id.
_TEMPLATE_ID = "tasks.fastpath.wire:template"


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


def _options(template: _Template, job_id: str, data: dict, queue: str, priority: int) -> dict:
    """``Producer.publish`` arguments of one job's message: the template's, with its own values."""
    options = dict(template.options)
    headers = dict(options["headers"])
    headers["id"] = job_id
    if headers.get("root_id") == _TEMPLATE_ID:
        headers["root_id"] = job_id
    kwargsrepr = repr(data)
    headers["kwargsrepr"] = kwargsrepr if len(kwargsrepr) <= REPR_MAX else (
        kwargsrepr[:REPR_MAX - 3] + "..."
    )
    options["headers"] = headers
    options["correlation_id"] = job_id
    options["priority"] = priority
    options["routing_key"] = queue
    return options


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
        """``batched``: the messages go out in chunks (``chunk()``), not one at a time."""
        self.app = app
        self.producer = producer
        # Read off the producer's connection: ``app.conf.broker_url`` is a
        # chained-settings lookup (~10 µs) and this runs for every ``add_job``.
        connection = producer.connection
        self.broker = (connection.transport_cls, connection.hostname, connection.port,
                       connection.virtual_host)
        self.highest_first = broker_kind(connection).highest_priority_first
        self.batched = batched
        self.batching = batched and producer.supports_batch_publish
        self.hooked = bool(
            signals.before_task_publish.receivers or signals.after_task_publish.receivers
        )
        self._templates: dict[str, _Template] = {}
        self._pipeline: Any = None  # the Redis pipeline (or client) of the open chunk
        self._pending: dict[str, list[str]] = {}  # list key -> payloads, until the chunk closes
        self._keys: dict[tuple[str, int], str] = {}  # (queue, native priority) -> list key
        self._frozens: dict[tuple[int, str], FrozenPayload | None] = {}  # when not shared
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
                self._flush(client)
            finally:
                self._pipeline, self._pending = None, {}
            return
        with client.pipeline(transaction=False) as pipeline:
            self._pipeline = pipeline
            try:
                yield
                if self._flush(pipeline):
                    pipeline.execute()
            finally:
                self._pipeline, self._pending = None, {}

    def _flush(self, target: Any) -> int:
        """One ``LPUSH`` per list with all of its messages, in order (the oldest is popped first)."""
        for key, payloads in self._pending.items():
            target.lpush(key, *payloads)
        return len(self._pending)

    def send(self, job_id: str, task_name: str, queue: str, data: dict, priority: int,
             data_json: str | None = None) -> None:
        """Publish one job's message (buffered inside ``chunk()``).

        ``data_json``: ``data`` already encoded as JSON (the enqueue measured it),
        spliced into the message body instead of being encoded again.
        """
        priority = native_priority(priority, self.highest_first)
        if self.hooked:
            Task.apply_async(
                self.app.tasks[task_name], args=(), kwargs=data, task_id=job_id, queue=queue,
                routing_key=queue, priority=priority, producer=self.producer,
            )  # fmt: skip
            return
        template = self._templates.get(task_name) or self._template(self.app.tasks[task_name], queue)
        if self._pipeline is not None:
            frozen = self._frozen(template, task_name, queue)
            if frozen is not None:
                key = self._keys.get((queue, priority)) or self._key(queue, priority)
                self._pending.setdefault(key, []).append(
                    frozen.render(job_id, data, data_json, priority)
                )
                return
        options = _options(template, job_id, data, queue, priority)
        body = ((), data, *template.body_tail)
        # Declared within the publish's own retry, as Celery does: a second
        # retry loop around the declaration doubled add_job's wait on a dead broker.
        self.producer.publish(body, declare=list(template.declare), **options)

    def _frozen(self, template: _Template, task_name: str, queue: str) -> FrozenPayload | None:
        """The Redis payload skeleton for this task and queue; None where it cannot serve."""
        channel = self.producer.channel
        # Kept on the channel with the shared templates (a new channel freezes again).
        cache = channel.__dict__.setdefault(_FROZEN, {}) if self._shared else self._frozens
        key = (id(template), queue)
        frozen = cache.get(key, False)
        if frozen is not False:
            return frozen
        options = template.options
        if (options.get("exchange") or options.get("compression")
                or options.get("serializer", "json") != "json"
                or queue in (getattr(channel, "_expires", None) or ())):
            frozen = None  # kombu's own publish: an exchange to route, a body to compress
        else:
            declared = channel.__dict__.setdefault(_DECLARED, set())
            if task_name not in declared:  # Celery: a cache lookup per message
                for entity in template.declare:
                    self.producer.maybe_declare(entity)
                declared.add(task_name)
            frozen = FrozenPayload.make(
                self.producer, _options(template, STAND_IN_ID, {}, queue, 0), template.body_tail, queue
            )
        cache[key] = frozen
        return frozen

    def _key(self, queue: str, priority: int) -> str:
        """The Redis list of ``queue`` for a native priority (kombu's clamping and naming)."""
        channel = self.producer.channel
        level = channel._get_message_priority({"properties": {"priority": priority}}, reverse=False)
        self._keys[(queue, priority)] = key = channel._q_for_pri(queue, level)
        return key

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
