"""Celery revokes on the job records: ``AsyncResult.revoke``, ``app.control.revoke``, Flower.

Celery's revoke is a broadcast: each worker keeps the id in memory (for
hours) and discards its messages. Here a revoke first cancels the job on
record (waiting or delayed: cancelled; active: cancellation requested, and
``terminate=True`` stops its process as before), then broadcasts as Celery
does. Workers tell the result backend (``mark_as_revoked``, then
``on_revoked``) when they hear a revoke and when they discard a revoked
message. A revoke broadcast by something other than this app (nothing on
record) cancels the job there. A job retried or re-queued later keeps its
id, so a worker may still hold it as revoked: when it discards a message of
a job re-queued after its cancellation, it forgets the revoke and publishes
the job again, so the retry runs within moments, not hours.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.app.control import Control

logger = logging.getLogger("tasks.integrations.revokes")


class JobControl(Control):
    """Celery's ``app.control`` whose revokes are recorded on the jobs first."""

    def revoke(self, task_id: Any, destination: Any = None, terminate: bool = False,
               signal: str = "SIGTERM", **kwargs: Any) -> Any:
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        cancel_on_record(ids, "celery revoke" + (" (terminate)" if terminate else ""))
        return super().revoke(task_id, destination=destination, terminate=terminate,
                              signal=signal, **kwargs)

    def revoke_by_stamped_headers(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "revoke_by_stamped_headers is not supported: jobs are revoked by id "
            "(AsyncResult.revoke, app.control.revoke), which cancels them on record")


def cancel_on_record(job_ids: list[str], by: str) -> None:
    """Cancel each job that can still be cancelled; others (finished, unknown) stay as they are."""
    from tasks.jobs.errors import JobNotFoundError, JobStateError
    from tasks.operate.actions import cancel_job

    for job_id in job_ids:
        try:
            cancel_job(job_id, by=by)
        except (JobNotFoundError, JobStateError):
            continue


def on_revoked(job_id: str) -> None:
    """A worker heard a revoke of ``job_id``, or discarded its message: settle the record.

    Runs in the worker's main process (Celery calls the result backend's
    ``mark_as_revoked`` there).
    """
    from celery.worker import state as worker_state

    from tasks.enqueue.publishing import message_for, publish
    from tasks.jobs.states import JobState
    from tasks.models import Job

    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.state not in (JobState.WAITING, JobState.DELAYED) or job.cancel_requested:
        return  # finished, or cancelled on record already
    requeued = (job.cancel_requested_at is not None and job.enqueued_at is not None
                and job.enqueued_at > job.cancel_requested_at)
    if not requeued:
        cancel_on_record([job_id], "celery revoke (broadcast by another client)")
        return
    worker_state.revoked.discard(job_id)
    if job.state == JobState.WAITING:
        logger.info("job %s was re-queued after its revoke: forgotten here, published again",
                    job_id)
        publish([message_for(job)])
