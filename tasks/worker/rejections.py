"""Messages on our queues that were not run (foreign, undecodable, unknown, with no job row): counted.

Each becomes a ``RejectedMessage`` row and an ERROR log line, so a forged or
broken message is visible on the dashboard instead of disappearing. A message
whose jobs could not be claimed (the database failed) goes back to the broker
instead (``requeued_unless_claimed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.exceptions import Reject
from django.db import DatabaseError, InterfaceError

from tasks.jobs.text import one_line, storable

logger = logging.getLogger("tasks.worker.rejections")


def record_rejected(reason: str, message: Any, detail: str = "") -> None:
    """Count and log a message that was not executed."""
    from tasks.models import RejectedMessage  # loaded before Django is set up

    delivery_info = getattr(message, "delivery_info", None)
    queue = (delivery_info or {}).get("routing_key") or "" if isinstance(delivery_info, dict) else ""
    queue = one_line(str(queue), 64)
    # The detail quotes the message (its id, its task name): escaped, so a
    # forged id can neither forge a log line nor fail the insert.
    logger.error("rejected message on %r: %s %s", queue, reason, one_line(detail, 200))
    try:
        RejectedMessage.objects.create(queue=queue, reason=reason, detail=storable(detail, 2000))
    except DatabaseError:
        logger.exception("could not record a rejected message (%s)", reason)


#: Seconds a worker waits before giving a message back when the database failed its claim,
#: so a database outage does not turn into a tight redelivery loop.
REQUEUE_PAUSE_S = 1.0


@contextmanager
def requeued_unless_claimed(what: str) -> Iterator[None]:
    """Around a claim: a database error gives the message back to the broker (``Reject``
    with ``requeue``), never acknowledges it.

    A failed task is acknowledged (late acks), and its jobs, never claimed, stay
    waiting with a published stamp: on Redis the reconciler finds them missing
    from the queue a minute later, but RabbitMQ's queues cannot be scanned, so
    there the jobs would wait for ever (found by the 100,000-job soak on
    RabbitMQ + PostgreSQL: two batch claims failed on a PostgreSQL deadlock and
    their 5 jobs were never run). Jobs the claim
    did take before failing are active on this worker: its orphan sweep gives
    them back.
    """
    try:
        yield
    except (DatabaseError, InterfaceError) as exc:
        logger.warning("claim of %s failed on the database (%s): message given back to the "
                       "broker", what, one_line(str(exc), 200))
        time.sleep(REQUEUE_PAUSE_S)
        raise Reject(exc, requeue=True) from exc
