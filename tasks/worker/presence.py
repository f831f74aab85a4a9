"""Which workers are alive and which queues they may consume: heartbeats and pause flags.

Each worker's main process writes a heartbeat row every ``HEARTBEAT_EVERY_S``
and reads the pause flags (``tasks.worker.bootstep``); the dashboard, the
health check, the reconciler and the commands read and write them here.
These are the service's own records, not Celery's ``app.control`` broadcasts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from tasks.jobs.config import QueueName
from tasks.jobs.routing import parse_queue
from tasks.models import QueueControl, WorkerHeartbeat

#: Workers beat every HEARTBEAT_EVERY_S; one silent for ``JOB_WORKER_GONE_AFTER_S`` is gone.
HEARTBEAT_EVERY_S = 2.0


def _set_paused(queue: QueueName | str, paused: bool, by: str) -> None:
    name = parse_queue(queue).value
    QueueControl.objects.update_or_create(
        queue=name, defaults={"paused": paused, "changed_by": by, "changed_at": timezone.now()}
    )


def pause_queue(queue: QueueName | str, by: str = "system") -> None:
    """Workers on every host stop taking jobs from ``queue`` within a heartbeat; jobs still queue up."""
    _set_paused(queue, True, by)


def resume_queue(queue: QueueName | str, by: str = "system") -> None:
    _set_paused(queue, False, by)


def paused_queues() -> set[str]:
    return set(QueueControl.objects.filter(paused=True).values_list("queue", flat=True))


def hold_queue(queue: QueueName | str, until: datetime, by: str = "system") -> None:
    """A processor was told to slow down (HTTP 429): no worker takes the queue's jobs until then."""
    name = parse_queue(queue).value
    control, _ = QueueControl.objects.get_or_create(queue=name)
    if control.held_until is None or control.held_until < until:
        QueueControl.objects.filter(queue=name).update(held_until=until, changed_by=by,
                                                       changed_at=timezone.now())


def held_queues(now: datetime | None = None) -> dict[str, datetime]:
    """Queues held after a processor was told to slow down: queue -> until when."""
    now = now or timezone.now()
    return dict(QueueControl.objects.filter(held_until__gt=now)
                .values_list("queue", "held_until"))


def workers(now: datetime | None = None) -> list[WorkerHeartbeat]:
    """Workers that beat recently."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.JOB_WORKER_GONE_AFTER_S)
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=cutoff).order_by("hostname"))


def missing_workers(now: datetime | None = None) -> list[WorkerHeartbeat]:
    """Workers that stopped beating without saying goodbye, newest silence first.

    A worker that shuts down cleanly deletes its heartbeat; one whose row is
    stale was killed or cut off from the network. It is reported until it has
    been silent for ``JOB_WORKER_FORGET_AFTER_S`` (retention then deletes it),
    so a host taken away without a clean stop does not warn for ever.
    """
    now = now or timezone.now()
    gone = now - timedelta(seconds=settings.JOB_WORKER_GONE_AFTER_S)
    forgotten = now - timedelta(seconds=settings.JOB_WORKER_FORGET_AFTER_S)
    return list(WorkerHeartbeat.objects.filter(last_seen__lt=gone, last_seen__gte=forgotten)
                .order_by("-last_seen"))


def forget_gone_workers(now: datetime | None = None) -> int:
    """Delete heartbeats silent for longer than ``JOB_WORKER_FORGET_AFTER_S``."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.JOB_WORKER_FORGET_AFTER_S)
    return WorkerHeartbeat.objects.filter(last_seen__lt=cutoff).delete()[0]


def consumers(now: datetime | None = None) -> dict[str, list[str]]:
    """Queue name → hostnames of live workers consuming it (every queue is a key)."""
    result: dict[str, list[str]] = {q.value: [] for q in QueueName}
    for worker in workers(now):
        for queue in worker.queues:
            result.setdefault(queue, []).append(worker.hostname)
    return result
