"""Messages on our queues that were not run (foreign, undecodable, unknown, with no job row): counted.

Each becomes a ``RejectedMessage`` row and an ERROR log line, so a forged or
broken message is visible on the dashboard instead of disappearing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError

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
