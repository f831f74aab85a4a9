"""Processors for the per-job option tests (time limits), on the real queues."""

from __future__ import annotations

import time

from billiard.exceptions import SoftTimeLimitExceeded

from tasks.jobs.config import QueueName
from tasks.worker.job import JobContext
from tasks.worker.registry import processor
from tests.testapp.processors import _record


@processor(QueueName.ANALYTICS, "stubborn")
def stubborn(job: JobContext, key: str, seconds: float = 30.0) -> str:
    """Ignores its soft time limit and keeps working: only the hard limit stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            _record(job, f"{key}:soft-ignored")
    _record(job, key)
    return "finished"
