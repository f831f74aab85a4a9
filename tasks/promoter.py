"""The promoter: publishes delayed jobs when due and relays unpublished ones.

Exactly one promoter is active at a time (a lease row in the database);
others wait as hot standbys. Because delays live in the database, not in
worker memory or broker ETAs, a 24-hour delay survives restarts and is
never re-delivered early by a visibility timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from tasks.control import PROMOTER_LEASE
from tasks.models import Job, JobState, Lease
from tasks.publishing import message_for, publish
from tasks.reconciler import reconcile_active, reconcile_waiting
from tasks.retention import enforce_retention

logger = logging.getLogger("tasks.promoter")

LEASE_TTL_S = 10.0
BATCH_SIZE = 1000
RETENTION_EVERY_S = 60.0


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lease(holder: str, now: datetime | None = None, ttl_s: float = LEASE_TTL_S) -> bool:
    """Take or renew the lease; True while this holder is the active promoter."""
    now = now or timezone.now()
    expires = now + timedelta(seconds=ttl_s)
    taken = Lease.objects.filter(Q(holder=holder) | Q(expires_at__lt=now), name=PROMOTER_LEASE).update(
        holder=holder, expires_at=expires, heartbeat_at=now
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=PROMOTER_LEASE, holder=holder, expires_at=expires, heartbeat_at=now)
        return True
    except IntegrityError:
        return False


def promote_due(now: datetime | None = None, batch: int = BATCH_SIZE) -> int:
    """Move due delayed jobs to waiting and publish them; returns how many."""
    now = now or timezone.now()
    ids = list(Job.objects.due(now).order_by("run_at").values_list("id", flat=True)[:batch])
    if not ids:
        return 0
    Job.objects.filter(pk__in=ids, state=JobState.DELAYED).update(
        state=JobState.WAITING, enqueued_at=now, published_at=None
    )
    jobs = Job.objects.filter(pk__in=ids, state=JobState.WAITING, published_at__isnull=True)
    return len(publish([message_for(job) for job in jobs]))


def relay_unpublished(now: datetime | None = None, batch: int = BATCH_SIZE) -> int:
    """Publish committed waiting jobs whose message never went out (outbox relay)."""
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.JOB_RELAY_GRACE_S)
    jobs = list(Job.objects.unpublished(before).order_by("enqueued_at")[:batch])
    if jobs:
        logger.warning("relaying %d unpublished job(s)", len(jobs))
    return len(publish([message_for(job) for job in jobs]))


def run_forever(stop: callable, interval_s: float | None = None) -> None:
    """The promoter loop; ``stop()`` returning True ends it."""
    interval_s = interval_s if interval_s is not None else settings.JOB_PROMOTER_INTERVAL_S
    holder = holder_id()
    last_retention = 0.0
    last_reconcile = 0.0
    active = False
    while not stop():
        close_old_connections()
        try:
            if acquire_lease(holder):
                if not active:
                    logger.info("promoter %s is active", holder)
                    active = True
                moved = promote_due()
                relay_unpublished()
                if time.monotonic() - last_reconcile > settings.JOB_RECONCILE_EVERY_S:
                    reconcile_active()
                    reconcile_waiting()
                    last_reconcile = time.monotonic()
                if time.monotonic() - last_retention > RETENTION_EVERY_S:
                    enforce_retention()
                    last_retention = time.monotonic()
                if moved >= BATCH_SIZE:
                    continue  # more are due: no sleep
            elif active:
                logger.warning("promoter %s lost the lease", holder)
                active = False
        except Exception:
            logger.exception("promoter tick failed; retrying")
        time.sleep(interval_s)
