"""Every piece of code that depends on a private detail of Celery, kombu or billiard.

Each fast path (``registry.FastPath``) names the versions it was written for
and checks its assumptions when it is installed; on a mismatch the stock
Celery/kombu path stays in place, one WARNING names it and why, and
``/queues/health`` reports ``degraded``. ``JOB_FASTPATH=off`` turns them all
off; the service is correct without them (the suite runs both ways in CI).

Entry points:
- ``install_process(app, role)``: once per process (worker start, web start,
  or the first publish elsewhere);
- ``install_consumer(consumer)``: at each worker consumer start;
- ``sender(app, producer, batched)``: the fast publisher, or None for the stock one;
- ``status(app)``: each fast path's state in this process;
- ``lifo_problem(app)``: why this process cannot put a LIFO job in front, or None;
- ``take_back(app, queue, job_id)``: remove a waiting job's queued messages (Redis).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from tasks.fastpath import redis_clients, redis_push, templates, unacked
from tasks.fastpath.registry import Fastpaths, fastpaths_of
from tasks.fastpath.sender import FastPathFailed, FastSender
from tasks.jobs.brokers import BrokerKind, broker_kind

logger = logging.getLogger("tasks.fastpath")

FAST_PATHS = (redis_clients.PATH, templates.PATH, redis_push.PATH, unacked.PATH)
NAMES = [path.name for path in FAST_PATHS]

__all__ = ["FAST_PATHS", "FastPathFailed", "TakeBackRefused", "install_consumer",
           "install_process", "lifo_problem", "sender", "status", "take_back"]


def fastpaths(app: Celery) -> Fastpaths:
    return fastpaths_of(app, NAMES)


def install_process(app: Celery, role: str = "process") -> Fastpaths:
    """Decide the process-wide fast paths once; apply ``redis-clients``; check the templates."""
    paths = fastpaths(app)
    if "process" in paths.installed:
        return paths
    paths.installed.add("process")
    redis = broker_kind(app.conf.broker_url) is BrokerKind.REDIS
    if paths.settle(redis_clients.PATH, redis, "the broker is not Redis"):
        redis_clients.patch()
    if paths.settle(templates.PATH) and not _publish_hooked():
        with app.connection_for_write() as connection:
            _verify_templates(app, connection, paths)
    paths.settle(redis_push.PATH, redis and paths.on(redis_clients.PATH.name),
                 "the broker is not Redis" if not redis else "redis-clients is off")
    logger.info("fast paths in this %s: %s", role,
                ", ".join(f"{name} {state}" for name, state in paths.state.items()))
    return paths


def install_consumer(consumer: Any) -> Fastpaths:
    """At each consumer start: the worker-side fast paths, and a check of ``redis-push``."""
    paths = install_process(consumer.app, "worker")
    for module in (unacked,):
        applies, why_not = module.applies(consumer)
        if paths.settle(module.PATH, applies, why_not):
            problem = module.problem(consumer)
            if problem:
                paths.fall_back(module.PATH.name, problem)
            else:
                module.install(consumer)
    if paths.on(redis_push.PATH.name) and "redis-push-verified" not in paths.installed:
        paths.installed.add("redis-push-verified")
        _verify_redis_push(consumer.app, consumer.connection, paths)
    return paths


def sender(app: Celery, producer: Any, batched: bool) -> FastSender | None:
    """The fast publisher for ``producer``, or None: publish by Celery's own path."""
    paths = install_process(app)
    if not paths.on(templates.PATH.name) or _publish_hooked():
        return None
    return FastSender(app, producer, batched, paths, paths.cache)


def status(app: Celery) -> dict[str, str]:
    """Each fast path's state here: ``on``, ``off (why)``, ``fallback: why`` or ``not installed``."""
    paths = fastpaths(app)
    return {name: paths.state.get(name, "not installed in this process") for name in NAMES}


def lifo_problem(app: Celery) -> str | None:
    """None when this process pushes job messages to Redis itself, so ``RPUSH`` can put one
    where kombu's consumer pops next (``BRPOP``); else why it cannot (then the stock
    path would add it at the back, as every other message)."""
    kind = broker_kind(app.conf.broker_url)
    if kind is not BrokerKind.REDIS:
        return (f"the broker is {kind.value}, not Redis: RabbitMQ delivers by priority, then in "
                "arrival order, and a message cannot be put in front")
    paths = install_process(app)
    for path in (templates.PATH, redis_push.PATH):
        if not paths.on(path.name):
            return (f"fast path {path.name} is {paths.state.get(path.name, 'not installed')} in "
                    "this process, and Celery's own publish adds every message at the back")
    if _publish_hooked():
        return ("a before/after_task_publish signal receiver is connected, so Celery's own "
                "publish runs, which adds every message at the back")
    return None


class TakeBackRefused(Exception):
    """A queued message cannot be taken back here; the text says why."""


#: Most messages ``take_back`` reads from a queue's lists (as the reconciler's scan).
TAKE_BACK_LIMIT = 50_000


def take_back(app: Celery, queue: str, job_id: str) -> int:
    """Remove the messages of a waiting job queued on ``queue``; how many were there.

    Only on Redis with the redis-push fast path on (it knows kombu's list names
    and payload layout, checked at install); ``TakeBackRefused`` elsewhere:
    RabbitMQ cannot take a queued message back.
    """
    kind = broker_kind(app.conf.broker_url)
    if kind is not BrokerKind.REDIS:
        raise TakeBackRefused(f"the broker is {kind.value}, which cannot take a queued "
                              "message back")
    paths = install_process(app)
    if not paths.on(redis_push.PATH.name):
        raise TakeBackRefused(f"fast path {redis_push.PATH.name} is "
                              f"{paths.state.get(redis_push.PATH.name, 'not installed')} in this "
                              "process")
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as client:
            removed = redis_push.take_back(client, channel, queue, job_id, TAKE_BACK_LIMIT)
    if removed is None:
        raise TakeBackRefused(f"queue {queue} holds over {TAKE_BACK_LIMIT:,} messages, too "
                              "many to search")
    return removed


def _publish_hooked() -> bool:
    """Listeners of Celery's publish signals must see every message: Celery's own path then."""
    return bool(signals.before_task_publish.receivers or signals.after_task_publish.receivers)


def _sample(app: Celery) -> tuple[Any, str] | None:
    """A registered task routed to a declared queue by its name's prefix, to check with."""
    queues = {queue.name for queue in app.conf.task_queues or ()}
    for name in sorted(app.tasks):
        prefix, _, rest = name.partition(".")
        if rest and prefix in queues:
            return app.tasks[name], prefix
    return None


def _verify_templates(app: Celery, connection: Any, paths: Fastpaths) -> None:
    sample = _sample(app)
    if sample is None:
        return  # each template is still checked when it is first made
    task, queue = sample
    try:
        template = templates.record(app, connection, task, queue, batching=False)
        problem = templates.verify(app, connection, task, queue, template)
    except Exception as exc:  # a changed Celery may fail in any way: off, loudly
        problem = f"checking it raised {type(exc).__name__}: {exc}"
    if problem:
        paths.fall_back(templates.PATH.name, problem)


def _verify_redis_push(app: Celery, connection: Any, paths: Fastpaths) -> None:
    sample = _sample(app)
    if sample is None or not paths.on(templates.PATH.name):
        return
    task, queue = sample
    try:
        producer = app.amqp.Producer(connection.default_channel, auto_declare=False)
        template = templates.record(app, connection, task, queue, batching=False)
        if not redis_push.serves(producer.channel, template, queue):
            return
        options = template.fill(redis_push.STAND_IN_ID, {}, queue, 0)
        frozen = redis_push.FrozenPayload.make(producer, template, options, queue)
        problem = redis_push.verify(producer, template, frozen, queue, templates.SAMPLES)
    except Exception as exc:  # a changed kombu may fail in any way: off, loudly
        problem = f"checking it raised {type(exc).__name__}: {exc}"
    if problem:
        paths.fall_back(redis_push.PATH.name, problem)
