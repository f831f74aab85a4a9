"""One redis-py client per kombu channel in workers, instead of one per broker call.

kombu 5.7's Redis channel builds a new ``redis.Redis`` object for every
publish, ack and QoS bookkeeping call (``Channel._create_client`` behind
``conn_or_acquire``). redis-py 8 fills a case-insensitive table of ~350
response callbacks in each constructor: ~170 µs of CPU on the 2-core VM,
about four times per job in the worker's main process (the task events,
the unacked-message bookkeeping, the ack), where plain Celery's consumer
spends most of its per-task time. A ``redis.Redis`` object holds no
connection of its own (it borrows one from the channel's pool per command),
so reusing it changes nothing else; a channel whose pool was replaced
(after a fork, or a reconnect) gets a fresh client for the new pool.

Installed by ``tasks.worker.bootstep`` when a worker starts; other processes keep
kombu's behaviour, except the publisher (``tasks.fastpath.wire``), which asks
``client_for`` for its channel's client instead of going through kombu.
"""

from __future__ import annotations

from typing import Any

_ATTRS = {False: "_intelgraph_client", True: "_intelgraph_async_client"}


def reuse_redis_clients() -> bool:
    """Patch kombu's Redis channel; False when this kombu has no such hook."""
    try:
        from kombu.transport.redis import Channel
    except ImportError:  # redis-py not installed: not a Redis broker
        return False
    original = getattr(Channel, "_create_client", None)
    if original is None:
        return False
    if getattr(original, "reuses_clients", False):
        return True

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        return _cached(self, asynchronous, original)

    _create_client.reuses_clients = True  # type: ignore[attr-defined]
    Channel._create_client = _create_client
    return True


def client_for(channel: Any) -> Any:
    """The channel's reused redis-py client (made on first use, remade for a new pool)."""
    return _cached(channel, False, type(channel)._create_client)


def _cached(channel: Any, asynchronous: bool, create: Any) -> Any:
    pool = channel.async_pool if asynchronous else channel.pool
    client = channel.__dict__.get(_ATTRS[asynchronous])
    if client is None or client.connection_pool is not pool:
        client = create(channel, asynchronous=asynchronous)
        channel.__dict__[_ATTRS[asynchronous]] = client
    return client
