"""Publishing job messages by the fast paths ``message-templates`` and ``redis-push``.

``FastSender`` has the interface of the stock sender (``tasks.enqueue.sending``):
``chunk()`` groups messages into one send, ``send()`` adds one. A fast step
that raises (not a broker error: those are the caller's, as on the stock
path) turns its fast path off with a warning and raises ``FastPathFailed``;
the caller sends the chunk again by the stock path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.app.task import Task
from kombu import Producer

from tasks.fastpath import redis_push, templates
from tasks.fastpath.redis_clients import client_for
from tasks.fastpath.registry import Fastpaths
from tasks.jobs.brokers import BrokerKind, broker_kind
from tasks.jobs.routing import native_priority

logger = logging.getLogger("tasks.fastpath")

#: Channel attributes: tasks whose queues were declared on it, and its frozen payloads
#: (a new channel, after a reconnect, declares and freezes again).
_DECLARED = "_intelgraph_declared"
_FROZEN = "_intelgraph_frozen"


class FastPathFailed(Exception):
    """A fast path raised and is now off; send the chunk again by the stock path."""


class FastSender:
    """Publishes job messages from templates, pushed straight to Redis where it can."""

    def __init__(self, app: Celery, producer: Producer, batched: bool, paths: Fastpaths,
                 shared: dict) -> None:
        """``shared``: templates kept across calls (``templates.template_key``)."""
        self.app = app
        self.producer = producer
        self.paths = paths
        self.shared = shared
        connection = producer.connection
        kind = broker_kind(connection)
        self.highest_first = kind.highest_priority_first
        self.broker = (connection.transport_cls, connection.hostname, connection.port,
                       connection.virtual_host)
        self.batched = batched
        self.batching = batched and producer.supports_batch_publish
        self.push = kind is BrokerKind.REDIS and paths.on(redis_push.PATH.name)
        self._templates: dict[tuple, templates.Template | None] = {}  # (task, limits) ->
        self._pipeline: Any = None  # the Redis pipeline (or client) of the open chunk
        self._pending: dict[str, list[str]] = {}  # list key -> payloads, until the chunk closes
        self._front: dict[str, list[str]] = {}  # the same for LIFO jobs (``RPUSH``)
        self._keys: dict[tuple[str, int], str] = {}
        self._frozens: dict[tuple[int, str], redis_push.FrozenPayload | None] = {}
        # Inside a task, messages name it as their parent: no shared templates then.
        self._shared = app.current_worker_task is None

    @contextmanager
    def chunk(self) -> Iterator[None]:
        """Messages sent inside go out together when it closes (one round trip on Redis).

        A failure while sending raises from here and none of the chunk's
        messages count as sent (some may have been: delivery is uncertain).
        """
        if not self.push:
            if not self.batching:
                yield
                return
            with self.producer.batch(max_size=1_000_000):
                yield
            return
        client = client_for(self.producer.channel)
        if not self.batched:  # one message: one LPUSH, no pipeline to set up
            self._pipeline = client
            try:
                yield
                self._flush(client)
            finally:
                self._pipeline, self._pending, self._front = None, {}, {}
            return
        with client.pipeline(transaction=False) as pipeline:
            self._pipeline = pipeline
            try:
                yield
                if self._flush(pipeline):
                    pipeline.execute()
            finally:
                self._pipeline, self._pending, self._front = None, {}, {}

    def _flush(self, target: Any) -> int:
        """One ``LPUSH`` per list with all of its messages, in order (the oldest is popped first);
        LIFO jobs' messages by ``RPUSH``, at the end kombu pops (``BRPOP``) from."""
        for key, payloads in self._pending.items():
            target.lpush(key, *payloads)
        for key, payloads in self._front.items():
            target.rpush(key, *payloads)
        return len(self._pending) + len(self._front)

    def send(self, job_id: str, task_name: str, queue: str, data: dict, priority: int,
             data_json: str | None = None, *, limits: tuple | None = None,
             lifo: bool = False) -> None:
        """Publish one job's message (buffered inside ``chunk()``).

        ``data_json``: ``data`` already encoded as JSON by the enqueue, spliced
        into a Redis payload instead of being encoded again. ``limits``: the
        job's own ``(hard, soft)`` time limits in seconds. ``lifo``: pushed to
        the end of its list that is taken next (Redis push only; elsewhere it
        goes to the back, with a warning).
        """
        priority = native_priority(priority, self.highest_first)
        template = self._templates.get((task_name, limits), False)
        if template is False:
            template = self._template(task_name, queue, limits)
        if template is None:  # past LIMIT_VARIANTS: Celery's own publish
            self._publish_stock(job_id, task_name, queue, data, priority, limits, lifo)
            return
        if self._pipeline is not None:
            frozen = self._frozen(template, task_name, queue)
            if frozen is not None:
                try:
                    key = self._keys.get((queue, priority)) or self._key(queue, priority)
                    payload = frozen.render(job_id, data, data_json, priority)
                except Exception as exc:
                    raise self._failed(redis_push.PATH.name, exc) from exc
                (self._front if lifo else self._pending).setdefault(key, []).append(payload)
                return
        if lifo:
            _published_fifo(job_id, "its message is not pushed to Redis by the redis-push fast path")
        try:
            options = template.fill(job_id, data, queue, priority)
        except Exception as exc:
            raise self._failed(templates.PATH.name, exc) from exc
        # Declared within the publish's own retry, as Celery does.
        self.producer.publish(template.body(data), declare=list(template.declare), **options)

    def _failed(self, name: str, exc: Exception) -> FastPathFailed:
        self.paths.fall_back(name, f"it raised {type(exc).__name__}: {exc}")
        return FastPathFailed(name)

    def _template(self, task_name: str, queue: str,
                  limits: tuple | None = None) -> templates.Template | None:
        """The task's template for these time limits; None past ``LIMIT_VARIANTS`` of them."""
        task = self.app.tasks[task_name]
        key = templates.template_key(self.app, self.broker, task, self.batching, limits)
        template = self.shared.get(key) if self._shared else None
        if template is None:
            if limits is not None and not self._room_for(task_name, limits):
                self._templates[(task_name, limits)] = None
                return None
            connection = self.producer.connection
            try:
                template = templates.record(self.app, connection, task, queue, self.batching,
                                            limits)
                problem = templates.verify(self.app, connection, task, queue, template, limits)
            except Exception as exc:
                raise self._failed(templates.PATH.name, exc) from exc
            if problem:
                self.paths.fall_back(templates.PATH.name, problem)
                raise FastPathFailed(templates.PATH.name)
            if self._shared:
                self.shared[key] = template
        self._templates[(task_name, limits)] = template
        return template

    def _room_for(self, task_name: str, limits: tuple) -> bool:
        """True while the task has fewer than ``LIMIT_VARIANTS`` limit templates here."""
        variants = self.shared.setdefault(("limit-variants", task_name), set()) \
            if self._shared else set()
        if limits in variants:
            return True
        if len(variants) >= templates.LIMIT_VARIANTS:
            return False
        variants.add(limits)
        return True

    def _publish_stock(self, job_id: str, task_name: str, queue: str, data: dict,
                       priority: int, limits: tuple | None, lifo: bool) -> None:
        """Celery's own publish (as ``tasks.enqueue.sending``) for a message no template serves."""
        if lifo:
            _published_fifo(job_id, "its time limits have no template of their own (more than "
                                    f"{templates.LIMIT_VARIANTS} variants of its task)")
        extra: dict[str, Any] = {"retry": False} if self.batching else {}
        if limits is not None:
            extra["time_limit"], extra["soft_time_limit"] = limits
        Task.apply_async(self.app.tasks[task_name], args=(), kwargs=data, task_id=job_id,
                         queue=queue, routing_key=queue, priority=priority,
                         producer=self.producer, **extra)

    def _frozen(self, template: templates.Template, task_name: str,
                queue: str) -> redis_push.FrozenPayload | None:
        """The Redis payload skeleton for this task and queue; None where it cannot serve."""
        channel = self.producer.channel
        cache = channel.__dict__.setdefault(_FROZEN, {}) if self._shared else self._frozens
        key = (id(template), queue)
        frozen = cache.get(key, False)
        if frozen is not False:
            return frozen
        if not redis_push.serves(channel, template, queue):
            frozen = None  # kombu's own publish: an exchange to route, a body to compress
        else:
            declared = channel.__dict__.setdefault(_DECLARED, set())
            if task_name not in declared:  # Celery: a cache lookup per message
                for entity in template.declare:
                    self.producer.maybe_declare(entity)
                declared.add(task_name)
            try:
                options = template.fill(redis_push.STAND_IN_ID, {}, queue, 0)
            except Exception as exc:
                raise self._failed(templates.PATH.name, exc) from exc
            try:
                frozen = redis_push.FrozenPayload.make(self.producer, template, options, queue)
                problem = redis_push.verify(self.producer, template, frozen, queue,
                                            templates.SAMPLES)
            except Exception as exc:
                raise self._failed(redis_push.PATH.name, exc) from exc
            if problem:
                self.paths.fall_back(redis_push.PATH.name, problem)
                raise FastPathFailed(redis_push.PATH.name)
        cache[key] = frozen
        return frozen

    def _key(self, queue: str, priority: int) -> str:
        self._keys[(queue, priority)] = key = redis_push.list_key(
            self.producer.channel, queue, priority)
        return key


def _published_fifo(job_id: str, why: str) -> None:
    """A LIFO job accepted at its add that this publish cannot put in front: said, not hidden."""
    logger.warning("job %s asked for LIFO but goes to the back of its priority: %s", job_id, why)
