"""Recovering jobs that lost their worker or their broker message.

- Active jobs whose worker is gone (no heartbeat) or whose pool process died
  go back to waiting and are re-published; the compare-and-set start keeps
  any stale duplicate message from running them twice. A job that loses its
  worker ``JOB_MAX_WORKER_LOST`` times is failed ("poison job").
- Waiting jobs published long ago whose message is not queued on the broker
  (lost with an un-synced Redis, or taken by a consumer that died, which Redis
  would return only after the visibility timeout) are re-published. Redis only: RabbitMQ returns a dead
  consumer's messages at once, and there a row is stamped published only after
  the publisher confirm (``tasks.enqueue.publishing.stamps_at_insert``), so a
  sender that died before its send left the row to the relay.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.utils import timezone

from tasks.enqueue.publishing import batch_size, message_for, publish
from tasks.jobs.brokers import BrokerKind, broker_kind
from tasks.jobs.config import PRIORITY_LEVELS, QueueName
from tasks.jobs.routing import BATCH_SUFFIX, task_name
from tasks.models import Job
from tasks.worker.lost import give_back
from tasks.worker.presence import workers

logger = logging.getLogger("tasks.upkeep.reconciler")

#: Beyond this many queued messages the broker is not scanned (too costly); logged.
SCAN_LIMIT = 50_000


def reconcile_active(now: datetime | None = None) -> int:
    """Active jobs on workers that stopped beating."""
    now = now or timezone.now()
    live = [w.hostname for w in workers(now)]
    cutoff = now - timedelta(seconds=settings.JOB_WORKER_GONE_AFTER_S)
    ids = list(
        Job.objects.active().filter(started_at__lt=cutoff)
        .exclude(worker__in=live)
        .values_list("id", flat=True)[:1000]
    )
    return give_back(ids, "its worker stopped sending heartbeats", now) if ids else 0


def _redis_message_ids(queue: str) -> set[str] | None:
    """Ids of messages waiting in ``queue``'s lists; None if the broker cannot be scanned.

    Messages a consumer took but has not acknowledged (kombu's ``unacked`` hash)
    do not count: a job still *waiting* long after its message was taken has
    a dead or stuck holder, and Redis would only return it after the
    visibility timeout. Re-publishing it is safe: the compare-and-set start
    runs it once.
    """
    with current_app.connection_for_write() as conn:
        if broker_kind(conn) is not BrokerKind.REDIS:
            return None
        channel = conn.default_channel
        client = channel.client
        keys = [queue] + [f"{queue}{channel.sep}{p}" for p in range(1, PRIORITY_LEVELS)]
        if sum(client.llen(key) for key in keys) > SCAN_LIMIT:
            logger.warning("queue %s holds over %d messages; not scanned", queue, SCAN_LIMIT)
            return None
        ids: set[str] = set()
        for raw in (item for key in keys for item in client.lrange(key, 0, -1)):
            try:
                message = json.loads(raw)
                headers = message["headers"]
                if str(headers.get("task", "")).endswith(BATCH_SUFFIX):
                    ids.update(_batch_ids(message))
                else:
                    ids.add(headers["id"])
            except (ValueError, KeyError, TypeError):
                continue
        return ids


def _batch_ids(message: dict) -> list[str]:
    """The job ids a batch message carries (its kwargs ``ids``; kombu's envelope, base64 body)."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _args, kwargs, _embed = json.loads(body)
    return [job_id for job_id in kwargs["ids"] if isinstance(job_id, str)]


def reconcile_waiting(now: datetime | None = None, stuck_after_s: float | None = None) -> int:
    """Re-publish waiting jobs whose message is no longer on the broker."""
    now = now or timezone.now()
    stuck_after_s = settings.JOB_STUCK_AFTER_S if stuck_after_s is None else stuck_after_s
    before = now - timedelta(seconds=stuck_after_s)
    republished = 0
    for queue in QueueName:
        candidates = list(
            Job.objects.waiting(queue).filter(published_at__lt=before)
            .order_by("published_at")[:1000]
        )
        if not candidates:
            continue
        present = _redis_message_ids(queue.value)
        if present is None:
            continue
        missing = [job for job in candidates if job.id not in present]
        if missing:
            logger.warning("re-publishing %d job(s) of %s with no broker message", len(missing), queue.value)
            Job.objects.filter(pk__in=[j.id for j in missing]).update(published_at=now)
            republished += len(publish([message_for(job) for job in missing], claimed=True))
    return republished


def enforce_cancellations(now: datetime | None = None) -> int:
    """Terminate active jobs that ignored a cancellation request for ``JOB_CANCEL_GRACE``.

    The processor is expected to check ``job.is_cancelled()``; one that does
    not is revoked with ``terminate=True`` (SIGTERM to its pool process). The
    worker then finds the job orphaned and, as cancellation was requested,
    marks it cancelled instead of running it again.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_CANCEL_GRACE_S)
    rows = list(
        Job.objects.active().filter(cancel_requested=True, cancel_requested_at__lt=cutoff)
        .values_list("id", "queue", "name")[:100]
    )
    for job_id, queue, name in rows:
        logger.warning("job %s ignored its cancellation for %ss: terminating it", job_id,
                       settings.JOB_CANCEL_GRACE_S)
        if batch_size(task_name(queue, name)) >= 2:
            # Run inside a batch, not as a request of its own: every worker looks for the
            # request carrying it (``tasks.worker.remote``).
            current_app.control.broadcast("terminate_job",
                                          arguments={"job_id": job_id, "signal": "SIGTERM"})
        else:
            current_app.control.revoke(job_id, terminate=True, signal="SIGTERM")
    return len(rows)
