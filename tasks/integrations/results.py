"""Celery's result API read from the job records: ``AsyncResult(id).state``, ``.get()`` …

The job table already holds every job's state, result and errors, so this
backend stores nothing of its own and adds no write to a job's run: it
answers Celery's ``get_task_meta`` from the row. States map as

    waiting, delayed      PENDING   (delayed after a failed attempt: RETRY)
    active                STARTED
    completed             SUCCESS   (result: the processor's return value)
    failed                FAILURE   (result: the last attempt's exception)
    cancelled             REVOKED   (result: TaskRevokedError)

An id with no row is PENDING, as in Celery. ``get()`` polls the row with a
back-off (20 ms doubling to 1 s), not at a fixed interval. ``forget()``
removes the record of a finished job and refuses an unfinished one.
Configured as ``CELERY_RESULT_BACKEND`` (settings/celery.py).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from celery import states
from celery.backends.base import BaseBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError

from tasks.jobs.errors import JobStateError, error_class_path
from tasks.jobs.states import FINISHED_STATES, JobState

logger = logging.getLogger("tasks.integrations.results")

#: First and longest pause between two reads of a row while ``get()`` waits (seconds).
POLL_FIRST_S = 0.02
POLL_LONGEST_S = 1.0

_STATES = {
    JobState.WAITING: states.PENDING,
    JobState.DELAYED: states.PENDING,
    JobState.ACTIVE: states.STARTED,
    JobState.COMPLETED: states.SUCCESS,
    JobState.FAILED: states.FAILURE,
    JobState.CANCELLED: states.REVOKED,
}


def celery_state(state: str, errors: list | None) -> str:
    """The Celery state of a job state (a delayed job with a failed attempt is retrying)."""
    if state == JobState.DELAYED and errors:
        return states.RETRY
    return _STATES[JobState(state)]


def _exception(entry: dict) -> dict:
    """An error entry as Celery's serialised exception (``exception_to_python`` reads it)."""
    module, _, name = error_class_path(entry).rpartition(".")
    message = str(entry.get("error", "")).split(":", 1)[-1].strip()
    return {"exc_type": name, "exc_module": module or "builtins", "exc_message": [message]}


class JobResultBackend(BaseBackend):
    """Answers Celery's result calls from the ``Job`` table; stores nothing itself."""

    supports_native_join = False
    persistent = True

    def _get_task_meta_for(self, task_id: str) -> dict:
        from tasks.models import Job

        row = (Job.objects.filter(pk=task_id)
               .values("state", "result", "errors", "finished_at", "queue", "name",
                       "attempts_made").first())
        if row is None:
            return {"task_id": task_id, "status": states.PENDING, "result": None,
                    "traceback": None, "children": [], "date_done": None}
        errors = row["errors"] or []
        status = celery_state(row["state"], errors)
        result: Any = None
        traceback = None
        if status == states.SUCCESS:
            result = row["result"]
        elif status in (states.FAILURE, states.RETRY) and errors:
            result = _exception(errors[-1])
            traceback = errors[-1].get("traceback") or None
        elif status == states.REVOKED:
            result = {"exc_type": "TaskRevokedError", "exc_module": "celery.exceptions",
                      "exc_message": ["cancelled"]}
        children = [self.app.AsyncResult(child) for child in  # what it started, once it ended
                    Job.objects.children_of(task_id).values_list("pk", flat=True)[:100]
                    ] if status in states.READY_STATES else []
        meta = {"task_id": task_id, "status": status, "result": result, "traceback": traceback,
                "children": children, "date_done": _iso(row["finished_at"]),
                "name": f"{row['queue']}.{row['name']}", "queue": row["queue"],
                "retries": max(row["attempts_made"] - 1, 0)}
        return self.meta_from_decoded(meta)

    def apply_chord(self, header_result_args: Any, body: Any, **kwargs: Any) -> Any:
        """A chord on record: its parts count down (``tasks.worker.canvas``), no polling task.

        Celery's default sends ``celery.chord_unlock`` to poll the parts; here
        the part that completes last applies the body, in its own transaction.
        """
        from tasks.models import JobGroup

        group_id, results = header_result_args[0], header_result_args[1]
        members = [result.id for result in results]
        JobGroup.objects.update_or_create(pk=group_id, defaults={
            "members": members, "callback": dict(body), "remaining": len(members),
            "failed": False})
        return self.app.GroupResult(*header_result_args)

    def _save_group(self, group_id: str, result: Any) -> Any:
        from tasks.models import JobGroup

        members = [member.id for member in result.results]
        group, created = JobGroup.objects.get_or_create(pk=group_id,
                                                        defaults={"members": members})
        if not created and group.members != members:
            JobGroup.objects.filter(pk=group_id).update(members=members)
        return result

    def _restore_group(self, group_id: str) -> dict | None:
        from tasks.models import JobGroup

        members = JobGroup.objects.filter(pk=group_id).values_list("members", flat=True).first()
        if members is None:
            return None
        return {"result": self.app.GroupResult(
            group_id, [self.app.AsyncResult(job_id) for job_id in members])}

    def _delete_group(self, group_id: str) -> None:
        from tasks.models import JobGroup

        JobGroup.objects.filter(pk=group_id).delete()

    def wait_for(self, task_id: str, timeout: float | None = None, interval: float = 0.5,
                 no_ack: bool = True, on_interval: Any = None) -> dict:
        """Read the row until the job is finished, backing off from 20 ms to 1 s between reads."""
        self._ensure_not_eager()
        started = time.monotonic()
        pause = POLL_FIRST_S
        while True:
            meta = self.get_task_meta(task_id, cache=False)
            if meta["status"] in states.READY_STATES:
                return meta
            if on_interval:
                on_interval()
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                raise CeleryTimeoutError("The operation timed out.")
            time.sleep(pause if timeout is None else min(pause, timeout - waited))
            pause = min(pause * 2, POLL_LONGEST_S, max(interval, POLL_FIRST_S) * 2)

    def _forget(self, task_id: str) -> None:
        from tasks.models import Job
        from tasks.operate.actions import remove_job

        state = Job.objects.filter(pk=task_id).values_list("state", flat=True).first()
        if state is None:
            return
        if state not in FINISHED_STATES:
            raise JobStateError(task_id, state, "forget")
        remove_job(task_id, by="celery forget()")

    def _store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> Any:
        """A state Celery reports itself (an unknown task's failure, a revoke): the record decides.

        Job rows change only by the service's guarded transitions, so Celery's
        report is logged, not written; a revoke cancels the job on record.
        Raising here would stop the worker (Celery calls it from its consumer).
        """
        if state == states.REVOKED:
            self.mark_as_revoked(task_id)
        else:
            logger.info("Celery reported %s for %s; the job record keeps its own state",
                        state, task_id)
        return result

    def mark_as_revoked(self, task_id: str, reason: str = "", request: Any = None,
                        store_result: bool = True, state: str = states.REVOKED) -> None:
        """A worker heard a revoke or discarded a revoked message: settle the record (``revokes``)."""
        from tasks.integrations.revokes import on_revoked

        on_revoked(task_id)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
