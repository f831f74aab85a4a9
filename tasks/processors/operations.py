"""Operator actions too large for a request, run as a job (``tasks/operate/bulk.py``)."""

from __future__ import annotations

from tasks.jobs.config import QueueName
from tasks.jobs.errors import JobInputError
from tasks.operate import bulk
from tasks.worker.job import JobContext
from tasks.worker.registry import processor


@processor(QueueName.ANALYTICS, bulk.JOB_NAME, check_data=bulk.check_operation,
           fail_on=(JobInputError,))
def queue_operation(job: JobContext, operation: str, queue: str, by: str,
                    state: str | None = None, before: str | None = None) -> dict:
    """Clean or retry-all over a queue in batches, with progress on this job's row."""
    return bulk.run_operation(job, operation, queue, by, state, before)
