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
from django.db.models import Q, QuerySet
from django.utils import timezone

from tasks.enqueue.publishing import (
    MESSAGE_FIELDS,
    Message,
    message_from_values,
    publish,
    stamps_at_insert,
)
from tasks.models import Job, JobState, Lease
from tasks.upkeep import counters
from tasks.upkeep.gate import Gate, forget_old_windows
from tasks.upkeep.reconciler import enforce_cancellations, reconcile_active, reconcile_waiting
from tasks.upkeep.retention import enforce_retention

logger = logging.getLogger("tasks.upkeep.promoter")

LEASE_TTL_S = 10.0
#: The lease the active promoter holds; its heartbeat is the promoter's last tick.
PROMOTER_LEASE = "promoter"
BATCH_SIZE = 1000


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def last_tick() -> datetime | None:
    """When the active promoter last renewed its lease (the health check's "promoter last tick")."""
    return Lease.objects.filter(name=PROMOTER_LEASE).values_list("heartbeat_at", flat=True).first()


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


def _claimed_messages(rows: QuerySet) -> list[Message]:
    """The messages of claimed rows, read as plain values.

    Only the columns a message needs: model instances would also decode
    every row's ``errors``/``result``/``progress`` JSON (measured ~30 % of a
    1,000-row promotion before the publish was pipelined).
    """
    return [message_from_values(values) for values in rows.values_list(*MESSAGE_FIELDS)]


def promote_due(now: datetime | None = None, batch: int = BATCH_SIZE,
                gated: bool = True) -> int:
    """Move due delayed jobs to waiting and publish them; returns how many.

    The rows are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL;
    SQLite serialises writers anyway), so several promoters can run at once
    and each due job is published by exactly one of them. Jobs under a rate
    limit or of a held queue pass the rate gate (``tasks.upkeep.gate``): the
    ones over it move to their next window; ``gated`` False (a promoter
    without the lease) leaves them to the one that has it.
    """
    now = now or timezone.now()
    if not Job.objects.due(now).exists():  # the common case, without a write transaction
        return 0
    with transaction.atomic():
        messages = _claimed_messages(
            Job.objects.due(now).select_for_update(skip_locked=True).order_by("run_at")[:batch]
        )
        gate = Gate(now)
        if not gate.idle:
            messages = _through(gate, messages, gated)
        if not messages:
            return 0
        # Claimed for publishing in the same statement: no relay takes them while
        # they are sent (on Redis stamped published, which the reconciler checks
        # against the broker's lists after JOB_STUCK_AFTER if this promoter dies
        # before its publish; on RabbitMQ, which cannot be searched, stamped after
        # the publisher confirm, so a promoter that dies first leaves them to the
        # relay once JOB_RELAY_GRACE has passed since ``enqueued_at``).
        # By primary key alone: the rows are ours until commit (locked on
        # PostgreSQL, the write lock on SQLite), and with ``state = ?`` added
        # SQLite walked the state index, every delayed row per batch (EXPLAIN
        # QUERY PLAN: promotion fell to ~1,200/s with 1,000,000 pending).
        stamp = timezone.now()
        stamped = stamps_at_insert()
        Job.objects.filter(pk__in=[m.job_id for m in messages]).update(
            state=JobState.WAITING, enqueued_at=stamp, published_at=stamp if stamped else None
        )
    return len(publish(messages, claimed=stamped))


def _through(gate: Gate, messages: list[Message], gated: bool) -> list[Message]:
    """The messages the gate lets through now; the others' rows move to when it will."""
    passed, later = [], {}
    for message in messages:
        name = message.task_name.partition(".")[2]
        if not gate.gated(message.queue, name):
            passed.append(message)
        elif gated:
            until = gate.admit(message.queue, name)
            if until is None:
                passed.append(message)
            else:
                later.setdefault(until, []).append(message.job_id)
    for until, ids in later.items():
        Job.objects.filter(pk__in=ids).update(run_at=until)
    gate.commit()
    return passed


def relay_unpublished(now: datetime | None = None, batch: int = BATCH_SIZE) -> int:
    """Publish committed waiting jobs whose message never went out (outbox relay).

    Rows are claimed under ``SKIP LOCKED`` and taken in one transaction, then
    sent after commit: a second relay neither waits for nor resends them. On
    Redis they are taken by their ``published_at`` stamp (the reconciler's if
    this process dies before sending); elsewhere by ``enqueued_at`` moved to
    now, and stamped published after the publisher confirm, so a relay that
    dies first leaves them to the next one after ``JOB_RELAY_GRACE``.
    """
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.JOB_RELAY_GRACE_S)
    if not Job.objects.unpublished(before).exists():
        return 0
    with transaction.atomic():
        messages = _claimed_messages(
            Job.objects.unpublished(before).select_for_update(skip_locked=True)
            .order_by("enqueued_at")[:batch]
        )
        if not messages:
            return 0
        taken = Job.objects.filter(pk__in=[m.job_id for m in messages], published_at__isnull=True)
        stamped = stamps_at_insert()
        taken.update(**{"published_at" if stamped else "enqueued_at": timezone.now()})
    logger.warning("relaying %d unpublished job(s)", len(messages))
    return len(publish(messages, claimed=stamped))


def run_forever(stop: callable, interval_s: float | None = None) -> None:
    """The promoter loop; ``stop()`` returning True ends it.

    Every promoter promotes and relays (row locks keep them apart); the lease
    holder alone also reconciles and applies retention, and its heartbeat is
    the "promoter last tick" the health check reports.
    """
    interval_s = interval_s if interval_s is not None else settings.JOB_PROMOTER_INTERVAL_S
    holder = holder_id()
    last_retention = 0.0
    last_reconcile = 0.0
    last_fold = 0.0
    active = False
    while not stop():
        close_old_connections()
        try:
            moved = promote_due(gated=active)
            relay_unpublished()
            if acquire_lease(holder):
                if not active:
                    logger.info("promoter %s is active", holder)
                    active = True
                if time.monotonic() - last_reconcile > settings.JOB_RECONCILE_EVERY_S:
                    reconcile_active()
                    reconcile_waiting()
                    enforce_cancellations()
                    last_reconcile = time.monotonic()
                if time.monotonic() - last_fold > settings.JOB_COUNTERS_FOLD_EVERY_S:
                    counters.fold()
                    last_fold = time.monotonic()
                if time.monotonic() - last_retention > settings.JOB_RETENTION_EVERY_S:
                    enforce_retention()
                    counters.roll_up()
                    forget_old_windows(timezone.now())
                    last_retention = time.monotonic()
            elif active:
                logger.warning("promoter %s lost the lease", holder)
                active = False
            if moved >= BATCH_SIZE:
                continue  # more are due: no sleep
        except Exception:
            logger.exception("promoter tick failed; retrying")
        time.sleep(interval_s)
