"""Figures computed from the job records: throughput, failure rate, durations."""

from __future__ import annotations

from datetime import datetime

from tasks.jobs.config import QueueName
from tasks.models import Job, JobState


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(int(round(fraction * (len(sorted_values) - 1))), len(sorted_values) - 1)
    return sorted_values[index]


def queue_figures(queue: QueueName, start: datetime, end: datetime) -> dict:
    """Jobs that finished in ``[start, end)``: counts, failure rate, per-minute rate, durations."""
    finished = Job.objects.filter(queue=queue.value, finished_at__gte=start, finished_at__lt=end)
    completed = finished.filter(state=JobState.COMPLETED)
    failed = finished.filter(state=JobState.FAILED).count()
    durations = sorted(
        (done - began).total_seconds() * 1000
        for began, done in completed.values_list("started_at", "finished_at")
        if began and done
    )
    n_completed = len(durations)
    minutes = max((end - start).total_seconds() / 60, 1e-9)
    total = n_completed + failed
    return {
        "queue": queue.value,
        "completed": n_completed,
        "failed": failed,
        "failure_rate": failed / total if total else 0.0,
        "throughput_per_min": n_completed / minutes,
        "avg_duration_ms": sum(durations) / n_completed if n_completed else None,
        "p95_duration_ms": _percentile(durations, 0.95),
    }
