"""Worker-side bookkeeping, run in each worker's main (consumer) process.

A consumer bootstep that, every ``HEARTBEAT_EVERY_S``:
- writes the worker's heartbeat (queues, concurrency, running jobs);
- applies queue pauses from the database (cancel/add the queue's consumer),
  so a paused queue is honoured on every host and after restarts;
- re-queues this worker's orphans: jobs the database says are active here but
  that no live request of this process holds (the pool child running them
  died, or the worker restarted under the same name).
At each consumer start it installs the worker's fast paths
(``tasks.fastpath.install_consumer``); the heartbeat reports their state.

Registered in ``intelgraph/celery.py``. Models are imported lazily: this
module is loaded before Django is set up.
"""

from __future__ import annotations

import logging
import os

from celery import bootsteps, signals
from celery.worker import state as worker_state

from tasks import fastpath
from tasks.worker import remote  # also registers the terminate_job control command
from tasks.worker.admission import refuse_non_job_tasks
from tasks.worker.rejections import record_rejected

logger = logging.getLogger("tasks.worker.bootstep")


def _guarded(strategy, consumer):
    def guarded(message, payload, ack, reject, callbacks, *args, **kwargs):
        try:
            return strategy(message, payload, ack, reject, callbacks, *args, **kwargs)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            consumer.on_invalid_task(payload, message, exc)

    guarded.__wrapped__ = strategy
    return guarded


@signals.task_prerun.connect
def _fresh_connections(**kwargs) -> None:
    """Connections are reused across tasks (CELERY_DB_REUSE_MAX): drop broken or old ones.

    Django's health check (``CONN_HEALTH_CHECKS``) would cost the default
    connection a ``SELECT 1`` before every job on PostgreSQL, a third round
    trip next to the claim and the completion; it is marked done instead, and
    ``lifecycle.claim``, every job's first statement, reconnects once if the
    server dropped the connection meanwhile.
    """
    from django.db import DEFAULT_DB_ALIAS, connections

    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
        if conn.alias == DEFAULT_DB_ALIAS and conn.connection is not None:
            conn.health_check_done = True


@signals.task_unknown.connect
def _on_unknown_task(sender=None, message=None, exc=None, name=None, id=None, **kwargs) -> None:
    record_rejected("unknown-task", message, f"task {name!r} id {id!r}")


@signals.task_rejected.connect
def _on_rejected(sender=None, message=None, exc=None, **kwargs) -> None:
    record_rejected("invalid" if exc else "not-a-task", message, repr(exc) if exc else "")


class JobWorkerStep(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, consumer, **kwargs) -> None:
        super().__init__(consumer, **kwargs)
        self.timer_entry = None
        self.started_at = None
        self.own_queues: list[str] = []
        self.cancelled: set[str] = set()

    def start(self, consumer) -> None:
        from django.utils import timezone

        from tasks.worker.presence import HEARTBEAT_EVERY_S

        if self.started_at is None:
            self.refuse_unsafe_broker(consumer)
        self.started_at = self.started_at or timezone.now()
        self.own_queues = self.own_queues or sorted(consumer.app.amqp.queues.consume_from)
        # Not an empty set: this also runs when the consumer restarts after the broker
        # connection was lost, and Celery's restarted consumer still leaves out the queues
        # a pause deselected. Forgetting them would leave a queue resumed meanwhile
        # unconsumed by this worker for good (found by the full-strength soak).
        self.cancelled = set(self.own_queues) - set(consumer.app.amqp.queues.consume_from)
        self.count_decode_errors(consumer)
        self.guard_strategies(consumer)
        refuse_non_job_tasks(consumer)  # job tasks only (tasks/worker/admission.py)
        fastpath.install_consumer(consumer)
        self.tick(consumer)  # pauses apply before the first message is fetched
        self.timer_entry = consumer.timer.call_repeatedly(HEARTBEAT_EVERY_S, self.tick, (consumer,))

    def refuse_unsafe_broker(self, consumer) -> None:
        """Warn about (production: refuse) a broker that may lose queued jobs."""
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from tasks.worker.broker_safety import broker_safety_problems

        problems = broker_safety_problems(consumer.app.conf.broker_url)
        for problem in problems:
            logger.warning("unsafe broker: %s", problem)
        if problems and settings.JOB_STRICT_BROKER_CHECKS:
            raise ImproperlyConfigured("refusing to start: " + "; ".join(problems))

    def count_decode_errors(self, consumer) -> None:
        """Garbage bytes: Celery logs and acks them; we also count them."""
        original = type(consumer).on_decode_error.__get__(consumer)

        def on_decode_error(message, exc) -> None:
            record_rejected("undecodable", message, f"{type(exc).__name__}: {exc}")
            original(message, exc)

        consumer.on_decode_error = on_decode_error
        consumer.task_consumer.on_decode_error = on_decode_error

    def guard_strategies(self, consumer) -> None:
        """A body of the wrong shape (e.g. ``{}`` instead of ``[args, kwargs, embed]``)
        makes Celery's strategy raise ValueError/TypeError, which stops the whole
        worker ("Unrecoverable error"). Reject such a message instead."""
        for name, strategy in list(consumer.strategies.items()):
            consumer.strategies[name] = _guarded(strategy, consumer)

    def stop(self, consumer) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def shutdown(self, consumer) -> None:
        self.stop(consumer)
        try:
            from tasks.models import WorkerHeartbeat

            WorkerHeartbeat.objects.filter(hostname=consumer.hostname).delete()
        except Exception:  # the database may be gone at shutdown
            logger.debug("could not remove heartbeat", exc_info=True)

    def tick(self, consumer) -> None:
        from django.db import close_old_connections

        try:
            close_old_connections()
            self.apply_pauses(consumer)
            self.beat(consumer)
            self.requeue_orphans(consumer)
        except Exception:
            logger.exception("worker bookkeeping failed; will retry")

    def apply_pauses(self, consumer) -> None:
        from tasks.worker.presence import held_queues, paused_queues

        # A queue held after a "slow down" (RateLimited) is not consumed until then either.
        paused = (paused_queues() | set(held_queues())) & set(self.own_queues)
        for queue in sorted(paused - self.cancelled):
            consumer.cancel_task_queue(queue)
            self.cancelled.add(queue)
            logger.warning("queue %s is paused or held: not consuming it", queue)
        for queue in sorted(self.cancelled - paused):
            consumer.add_task_queue(queue)
            self.cancelled.discard(queue)
            logger.warning("queue %s resumed: consuming it again", queue)

    def beat(self, consumer) -> None:
        from django.utils import timezone

        from tasks.models import WorkerHeartbeat

        WorkerHeartbeat.objects.update_or_create(
            hostname=consumer.hostname,
            defaults={
                "pid": os.getpid(),
                "queues": sorted(q.name for q in consumer.task_consumer.queues),
                "concurrency": consumer.pool.num_processes if consumer.pool else 0,
                "active": len(worker_state.active_requests),
                "started_at": self.started_at,
                "fastpaths": fastpath.status(consumer.app),
                "last_seen": timezone.now(),
            },
        )

    def requeue_orphans(self, consumer) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from tasks.worker.lost import requeue_lost

        # Snapshot first; jobs claimed after it (thread pools run concurrently
        # with this timer) are excluded by the start-time bound.
        held = {job_id for request in list(worker_state.reserved_requests)
                for job_id in remote.job_ids_of(request)}  # a batch holds the jobs it carries
        requeue_lost(consumer.hostname, exclude_ids=held,
                     started_before=timezone.now() - timedelta(seconds=1))
