"""Sending job messages to the broker, after commit, in batches.

A job row is written first; its message goes out only once the row is
committed (``transaction.on_commit``). A publish that fails (broker down)
leaves ``published_at`` empty and the promoter's relay sends it later, so
the caller never waits on an unreachable broker for long.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from celery import current_app
from celery.app.task import Task
from django.db import transaction
from django.utils import timezone

from tasks.models import Job, JobState
from tasks.routing import broker_priority

logger = logging.getLogger("tasks.publishing")


@dataclass(frozen=True)
class Message:
    """What a broker message carries: the job id, its task, kwargs and priority."""

    job_id: str
    task_name: str
    queue: str
    data: dict
    priority: int


def message_for(job: Job) -> Message:
    return Message(job.id, f"{job.queue}.{job.name}", job.queue, job.data, job.priority)


#: Sent messages are marked published every this many, so a long batch never
#: leaves early ones looking unpublished long enough for the relay to resend them.
MARK_EVERY = 100


def publish(messages: Sequence[Message], claimed: bool = False) -> list[str]:
    """Send messages on one pooled producer; return the ids sent.

    By default the sent rows are marked published as they go. ``claimed``
    rows were already stamped ``published_at`` in the transaction that took
    them (promoter, relay: so no other relay can take them meanwhile); the
    ones that could not be sent are released back to the relay.
    """
    if not messages:
        return []
    app = current_app
    broker_url = app.conf.broker_url or ""
    sent: list[str] = []
    marked = 0
    try:
        with app.producer_or_acquire() as producer:
            for message in messages:
                task = app.tasks[message.task_name]
                Task.apply_async(
                    task,
                    args=(),
                    kwargs=message.data,
                    task_id=message.job_id,
                    queue=message.queue,
                    routing_key=message.queue,
                    priority=broker_priority(message.priority, broker_url),
                    producer=producer,
                )
                sent.append(message.job_id)
                if not claimed and len(sent) - marked >= MARK_EVERY:
                    mark_published(sent[marked:])
                    marked = len(sent)
    except Exception as exc:  # broker down or refusing: the relay retries later
        logger.warning(
            "publish failed for %d of %d job(s); left for the relay: %s",
            len(messages) - len(sent),
            len(messages),
            exc,
        )
    if claimed:
        unsent = [message.job_id for message in messages[len(sent):]]
        if unsent:
            Job.objects.filter(pk__in=unsent, state=JobState.WAITING).update(published_at=None)
    elif len(sent) > marked:
        mark_published(sent[marked:])
    return sent


def mark_published(job_ids: Iterable[str]) -> None:
    Job.objects.filter(
        pk__in=list(job_ids), state=JobState.WAITING, published_at__isnull=True
    ).update(published_at=timezone.now())


def publish_on_commit(messages: Sequence[Message]) -> None:
    """Publish after the caller's transaction commits (at once in autocommit)."""
    if messages:
        transaction.on_commit(lambda: publish(messages))
