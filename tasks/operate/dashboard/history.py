"""A job's state history, rebuilt from its timestamps and its failed attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tasks.models import Job, JobState


@dataclass(frozen=True)
class Event:
    at: datetime
    state: str
    text: str


def _parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def events(job: Job) -> list[Event]:
    """Oldest first. Attempts before the last one come from ``job.errors``."""
    found = [Event(job.created_at, "created", f"created with priority {job.priority}")]
    if job.delay_ms and job.run_at:
        found.append(Event(job.created_at, JobState.DELAYED,
                           f"delayed {job.delay_ms / 1000:g}s"))
    worker = f" on {job.worker}" if job.worker else ""
    recorded_attempts = set()
    for entry in job.errors or []:
        attempt = entry.get("attempt", "?")
        recorded_attempts.add(attempt)
        started = _parse(entry.get("started_at"))
        failed = _parse(entry.get("failed_at"))
        if started:
            on = worker if attempt == job.attempts_made else ""
            found.append(Event(started, JobState.ACTIVE, f"attempt {attempt} started{on}"))
        if failed:
            found.append(Event(failed, "failed attempt",
                               f"attempt {attempt} failed: {entry.get('error', '')}"))
    if job.enqueued_at:
        found.append(Event(job.enqueued_at, JobState.WAITING, "waiting (last queued)"))
    if job.published_at:
        found.append(Event(job.published_at, "published", "sent to the broker"))
    if job.started_at and job.attempts_made not in recorded_attempts:
        found.append(Event(job.started_at, JobState.ACTIVE,
                           f"attempt {job.attempts_made} started{worker}"))
    if job.finished_at and job.state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
        found.append(Event(job.finished_at, job.state, job.state))
    return sorted(found, key=lambda e: e.at)
