"""Running worker work one event-loop turn after the prefork pool writes a received job.

A received job waits in the prefork pool's outbound buffer (billiard's
private ``AsynPool.outbound_buffer``) until the child's pipe polls writable,
in the poll of the next loop turn. Work scheduled with ``hub.call_soon`` runs
at the top of that turn, before the write, and delays the job's start by its
own duration. ``after_pool_writes`` gives such work (kombu's unacked
records, ``tasks.fastpath.unacked``) one more turn while a job is still in the buffer,
and no more: that turn's poll writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def is_prefork(consumer: Any) -> bool:
    from celery.concurrency.prefork import TaskPool

    return isinstance(consumer.pool, TaskPool)


def pool_outbound(consumer: Any) -> Any:
    """The prefork pool's outbound buffer; None where there is none."""
    return getattr(getattr(consumer.pool, "_pool", None), "outbound_buffer", None)


def outbound_problem(consumer: Any) -> str | None:
    """Why a prefork pool's outbound buffer cannot be used, or None."""
    if pool_outbound(consumer) is None:
        return "the prefork pool has no _pool.outbound_buffer"
    return None


def after_pool_writes(hub: Any, outbound: Any, fn: Callable[[], None]) -> Callable[[], None]:
    """A loop callback that runs ``fn``, first waiting one turn if a job is still unwritten."""
    held = False

    def run() -> None:
        nonlocal held
        if outbound and not held:
            held = True
            hub.call_soon(run)
            return
        held = False
        fn()

    return run
