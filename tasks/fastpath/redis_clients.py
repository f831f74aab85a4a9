"""Fast path ``redis-clients``: one redis-py client per kombu Redis channel, not one per call.

kombu 5.7's Redis channel builds a new ``redis.Redis`` for every publish, ack
and QoS call (``Channel._create_client``, private). redis-py 8 fills a table
of ~350 response callbacks in each constructor, several times per job in a
worker's main process. A ``redis.Redis`` holds no connection of its own (it
borrows one from the channel's pool per command), so reusing it changes
nothing else; a channel whose pool was replaced (after a fork or a
reconnect) gets a fresh client for the new pool.
"""

from __future__ import annotations

import inspect
from typing import Any

from tasks.fastpath.registry import FastPath, has_attributes

_ATTRS = {False: "_intelgraph_client", True: "_intelgraph_async_client"}


def _channel_class() -> Any:
    from kombu.transport.redis import Channel

    return Channel


def _probe() -> str | None:
    try:
        channel = _channel_class()
    except ImportError as exc:
        return f"kombu's Redis transport does not import: {exc}"
    missing = has_attributes(channel, "_create_client", "pool", "async_pool")
    if missing:
        return missing
    create = getattr(channel._create_client, "__wrapped__", channel._create_client)
    parameters = list(inspect.signature(create).parameters)
    if parameters != ["self", "asynchronous"]:
        return f"Channel._create_client takes {parameters}, not [self, asynchronous]"
    return None


PATH = FastPath("redis-clients", "drain: worker CPU per job (main process)",
                (("kombu", "5.7.0"), ("redis", "8.1.0")), _probe)


def patch() -> None:
    """Make every kombu Redis channel reuse its client (idempotent)."""
    channel = _channel_class()
    original = channel._create_client
    if getattr(original, "__wrapped__", None) is not None:
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        return _cached(self, asynchronous, original)

    _create_client.__wrapped__ = original  # type: ignore[attr-defined]
    channel._create_client = _create_client


def client_for(channel: Any) -> Any:
    """The channel's reused redis-py client (made on first use, remade for a new pool)."""
    create = type(channel)._create_client
    return _cached(channel, False, getattr(create, "__wrapped__", create))


def _cached(channel: Any, asynchronous: bool, create: Any) -> Any:
    pool = channel.async_pool if asynchronous else channel.pool
    client = channel.__dict__.get(_ATTRS[asynchronous])
    if client is None or client.connection_pool is not pool:
        client = create(channel, asynchronous=asynchronous)
        channel.__dict__[_ATTRS[asynchronous]] = client
    return client
