"""BullMQ-style queue objects over the job records: counts, listings, clean, actions."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from tasks.enqueue.api import add_job
from tasks.jobs.config import QueueName
from tasks.jobs.routing import parse_queue
from tasks.jobs.states import ALL_STATES, JobState
from tasks.models import Job
from tasks.operate import actions
from tasks.upkeep import retention
from tasks.worker import presence


class Queue:
    """One declared queue. Stateless: every call reads the job table."""

    def __init__(self, name: QueueName) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Queue {self.name.value}>"

    def add(self, name: str, data: dict | None = None, **options: Any) -> str:
        return add_job(self.name, name, data, **options)

    def get_job_counts(self, *states: str) -> dict[str, int]:
        """``{"waiting", "active", "delayed", "completed", "failed", "cancelled"}`` → counts."""
        wanted = list(states) or list(ALL_STATES)
        counts = dict.fromkeys(wanted, 0)
        rows = (
            Job.objects.filter(queue=self.name.value, state__in=wanted)
            .values("state")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            counts[row["state"]] = row["n"]
        return counts

    def _list(self, state: str, start: int, end: int, newest_first: bool = True) -> list[Job]:
        order = "-created_at" if newest_first else "created_at"
        qs = Job.objects.filter(queue=self.name.value, state=state).order_by(order)
        return list(qs[start:] if end < 0 else qs[start:end + 1])

    def get_waiting(self, start: int = 0, end: int = -1) -> list[Job]:
        return self._list(JobState.WAITING, start, end, newest_first=False)

    def get_delayed(self, start: int = 0, end: int = -1) -> list[Job]:
        return self._list(JobState.DELAYED, start, end, newest_first=False)

    def get_active(self, start: int = 0, end: int = -1) -> list[Job]:
        return self._list(JobState.ACTIVE, start, end)

    def get_completed(self, start: int = 0, end: int = -1) -> list[Job]:
        return self._list(JobState.COMPLETED, start, end)

    def get_failed(self, start: int = 0, end: int = -1) -> list[Job]:
        return self._list(JobState.FAILED, start, end)

    def get_job(self, job_id: str) -> Job | None:
        return Job.objects.filter(queue=self.name.value, pk=job_id).first()

    def clean(self, grace: Any, state: str = JobState.COMPLETED, limit: int | None = None) -> int:
        """Delete jobs in ``state`` older than ``grace`` (timedelta or ms); return the count."""
        return retention.clean(self.name, grace, state, limit)

    def retry_failed(self, by: str = "system") -> int:
        return actions.retry_failed(self.name.value, by)

    def pause(self, by: str = "system") -> None:
        """BullMQ's ``queue.pause()``: workers on every host stop taking its jobs within a
        heartbeat (``presence.HEARTBEAT_EVERY_S``); jobs still queue up."""
        presence.pause_queue(self.name, by)

    def resume(self, by: str = "system") -> None:
        presence.resume_queue(self.name, by)

    def is_paused(self) -> bool:
        return self.name.value in presence.paused_queues()

    retry_job = staticmethod(actions.retry_job)
    promote_job = staticmethod(actions.promote_job)
    cancel_job = staticmethod(actions.cancel_job)
    remove_job = staticmethod(actions.remove_job)


class QueueRegistry:
    """``queue_registry.get_queue(QueueName.EMAIL)``; refuses undeclared queues."""

    def get_queue(self, name: QueueName | str) -> Queue:
        return Queue(parse_queue(name))

    def all(self) -> list[Queue]:
        return [Queue(name) for name in QueueName]


queue_registry = QueueRegistry()


def get_job(job_id: str) -> Job | None:
    """The record of job ``job_id`` on any queue (BullMQ's ``Job.fromId``); None if unknown."""
    return Job.objects.filter(pk=job_id).first()
