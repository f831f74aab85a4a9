"""kombu's unacked-message bookkeeping on Redis, written after the job reaches its pool process.

With late acks on Redis, kombu records every message it takes in two keys
(``unacked`` hash, ``unacked_index`` sorted set) so that a message whose
worker dies is restored after the visibility timeout. It writes them in a
``MULTI ZADD HSET EXEC`` round trip *before* Celery sees the message: ~0.4 ms
of the ~3 ms from ``add_job`` to the job's start at idle on the 2-core VM
(``bench/steps.py``). Here the write waits until the prefork pool has written
the job to a child (``tasks.fastpath.pool_writes``), so the child starts while
the main process records it; messages taken in the same turns share one
round trip.

What this trades, and why it is safe for jobs: a worker killed within that
turn (well under a millisecond) leaves no unacked record, so kombu cannot
restore the message. Every job message has a row, and the reconciler covers
both cases: a job never claimed is still waiting with no message on the broker
and is re-published after ``JOB_STUCK_AFTER``; a claimed one is active under a
worker whose heartbeat stops and is re-queued. kombu's own paths keep their
meaning: a message acknowledged before its record was written is simply never
written (nothing to delete); rejecting, restoring at shutdown or on a lost
connection write any pending records first and then do what kombu does.

Installed per consumer start (a reconnect makes a new channel and QoS), by
``tasks.worker.bootstep``, only where there is an event loop, a pool with an outbound
buffer (prefork) and kombu's Redis QoS. The turn's wait is
``tasks.fastpath.pool_writes``.
"""

from __future__ import annotations

from time import time
from typing import Any

from kombu.utils.json import dumps

from tasks.fastpath.pool_writes import (
    after_pool_writes,
    is_prefork,
    outbound_problem,
    pool_outbound,
)
from tasks.fastpath.registry import FastPath, has_attributes

#: QoS attribute marking an instance as already deferred.
_MARK = "_intelgraph_deferred"


def _qos_class() -> Any:
    from kombu.transport.redis import QoS

    return QoS


def _probe() -> str | None:
    try:
        qos = _qos_class()
    except ImportError as exc:
        return f"kombu's Redis transport does not import: {exc}"
    return has_attributes(qos, "append", "ack", "reject", "restore_unacked", "pipe_or_acquire",
                          "unacked_key", "unacked_index_key")


PATH = FastPath("unacked-after-pool-write", "idle latency: enqueue to start",
                (("kombu", "5.7.0"), ("celery", "5.7.0"), ("billiard", "4.3.2")), _probe)


def _qos(consumer: Any) -> Any:
    # AMQP channels (py-amqp) have no ``qos``: the broker keeps unacked messages itself.
    return getattr(consumer.connection.default_channel, "qos", None)


def applies(consumer: Any) -> tuple[bool, str]:
    """(True, "") on kombu's Redis transport with an event loop and a prefork pool."""
    try:
        redis_qos = _qos_class()
    except ImportError:
        return False, "the broker is not Redis"
    if not isinstance(_qos(consumer), redis_qos):
        return False, "the broker is not Redis"
    if consumer.hub is None:
        return False, "no event loop"
    if not is_prefork(consumer):
        return False, "the pool is not prefork"
    return True, ""


def problem(consumer: Any) -> str | None:
    return outbound_problem(consumer)


def install(consumer: Any) -> None:
    """Write kombu's unacked records after the pool write (per consumer start; idempotent)."""
    qos = _qos(consumer)
    if not getattr(qos, _MARK, False):
        _DeferredBookkeeping(qos, consumer.hub, pool_outbound(consumer)).install()


class _DeferredBookkeeping:
    """Pending unacked records of one QoS, and the QoS methods that must see them."""

    def __init__(self, qos: Any, hub: Any, outbound: Any) -> None:
        self.qos = qos
        self.hub = hub
        self.pending: dict[str, Any] = {}  # delivery tag -> message, in arrival order
        self.scheduled = False
        self.write_soon = after_pool_writes(hub, outbound, self.write_scheduled)
        # kombu's Redis QoS methods, bound, and the in-memory base class's.
        self.redis_ack = qos.ack
        self.redis_reject = qos.reject
        self.redis_restore_unacked = qos.restore_unacked
        self.memory_append = super(type(qos), qos).append
        self.memory_ack = super(type(qos), qos).ack

    def install(self) -> None:
        qos = self.qos
        qos.append = self.append
        qos.ack = self.ack
        qos.reject = self.reject
        qos.restore_unacked = self.restore_unacked
        setattr(qos, _MARK, True)

    def append(self, message: Any, delivery_tag: str) -> None:
        """kombu's ``append``: in memory now (prefetch counting), in Redis after the pool write."""
        self.pending[delivery_tag] = message
        self.memory_append(message, delivery_tag)
        if not self.scheduled:
            self.scheduled = True
            self.hub.call_soon(self.write_soon)

    def write_scheduled(self) -> None:
        self.scheduled = False
        self.write()

    def write(self) -> None:
        """The records kombu's ``append`` writes, for every pending message, in one round trip."""
        if not self.pending:
            return
        items = list(self.pending.items())
        self.pending.clear()
        qos = self.qos
        now = time()
        with qos.pipe_or_acquire() as pipe:
            pipe.zadd(qos.unacked_index_key, {tag: now for tag, _ in items})
            for tag, message in items:
                delivery = message.delivery_info
                pipe.hset(qos.unacked_key, tag,
                          dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))
            pipe.execute()

    def ack(self, delivery_tag: str) -> None:
        """A message acknowledged before its record was written: nothing to write or delete."""
        if self.pending.pop(delivery_tag, None) is not None:
            self.memory_ack(delivery_tag)
            return
        self.redis_ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if not requeue and self.pending.pop(delivery_tag, None) is not None:
            self.memory_ack(delivery_tag)  # dropped: as kombu, minus the record never written
            return
        self.write()  # a requeue restores the message from its record
        self.redis_reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        """At shutdown or on a lost connection: kombu restores from the records."""
        self.write()
        self.redis_restore_unacked(client)
