"""Fast path ``events-after-pool-write``: task events published after the job reaches its child.

Celery buffers task events in the event loop and flushes them (the private
``Consumer._flush_events_promise``) on the next turn, which runs before the
prefork pool writes the job to a child: every job started one event
``PUBLISH`` round trip late. Here the flush waits one more turn while the job
is still in the pool's outbound buffer, and no longer (``pool_writes``).
Events are sent as before, one turn later.
"""

from __future__ import annotations

from typing import Any

from tasks.fastpath.pool_writes import (
    after_pool_writes,
    is_prefork,
    outbound_problem,
    pool_outbound,
)
from tasks.fastpath.registry import FastPath, has_attributes


def _probe() -> str | None:
    from celery.worker.consumer.consumer import Consumer

    return has_attributes(Consumer, "_flush_events")


PATH = FastPath("events-after-pool-write", "idle latency: enqueue to start",
                (("celery", "5.7.0"), ("billiard", "4.3.2")), _probe)


def applies(consumer: Any) -> tuple[bool, str]:
    """(True, "") where there is an event loop, task events and a prefork pool."""
    if consumer.hub is None:
        return False, "no event loop"
    if consumer.event_dispatcher is None:
        return False, "task events are off"
    if not is_prefork(consumer):
        return False, "the pool is not prefork"
    return True, ""


def problem(consumer: Any) -> str | None:
    """Why this consumer does not look as assumed, or None."""
    return (has_attributes(consumer, "_flush_events_promise")
            or has_attributes(consumer.event_dispatcher, "on_send_buffered")
            or outbound_problem(consumer))


def install(consumer: Any) -> None:
    """Have the consumer's task events flushed after pool writes (per consumer start)."""
    from vine import promise

    hub, dispatcher = consumer.hub, consumer.event_dispatcher
    flush = consumer._flush_events_promise  # reads the current dispatcher
    flush_soon = promise(after_pool_writes(hub, pool_outbound(consumer), flush))
    dispatcher.on_send_buffered = lambda: hub.call_soon(flush_soon)
