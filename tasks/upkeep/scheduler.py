"""Beat scheduler that fires each schedule exactly once per firing.

django-celery-beat's ``DatabaseScheduler`` (schedules edited in admin), plus:
every firing gets a deterministic job id ``cron:<schedule>:<fire time>``.
The job row is inserted under that primary key before anything is
published, so two beat processes running at once, or a beat restarted
before it saved ``last_run_at``, add one job per firing, never two.

The fire time is the schedule's nominal time, not the moment beat woke up:
- crontab: the first cron time after the entry's last run (what every beat
  process computes alike), to the minute, in UTC;
- interval: the start of the current ``every``-long bucket since the epoch.

Daylight-saving rule (crontab in a zone with DST, e.g. Europe/Berlin 02:30):
a wall time skipped by spring-forward runs once, at the same UTC instant it
would have had on the old offset (02:30 CET = 03:30 CEST on 2026-03-29); a
wall time that occurs twice at fall-back runs once, at its first occurrence
(02:30 CEST on 2026-10-25). ``tests/unit/test_beat.py`` pins both.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from celery import schedules
from celery.beat import SchedulingError
from django_celery_beat.schedulers import DatabaseScheduler

from tasks.enqueue.task import RecordingTask
from tasks.jobs.spec import valid_job_id


def firing_time(schedule, last_run_at: datetime, now: datetime) -> datetime:
    """The nominal time of the firing that is due now (UTC, whole seconds)."""
    if isinstance(schedule, schedules.crontab):
        remaining = schedule.remaining_estimate(last_run_at)
        nominal = now + remaining
        return nominal.astimezone(UTC).replace(second=0, microsecond=0)
    if isinstance(schedule, schedules.schedule):
        every = max(schedule.run_every.total_seconds(), 1.0)
        bucket = int(now.timestamp() // every) * every
        return datetime.fromtimestamp(bucket, UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def firing_job_id(schedule_name: str, fire_time: datetime) -> str:
    """``cron:<schedule>:<fire time>``; a name that is not a valid id part is escaped.

    Schedule names are free text (admin): '/', control characters or '%' are
    percent-encoded, so the id stays a valid job id (``tasks.jobs.spec``) and
    distinct names keep distinct ids; names too long for it end in a digest.
    """
    name = schedule_name
    if not valid_job_id(name) or "%" in name:
        name = "".join(ch if ch.isprintable() and ch not in "/%" else
                       "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
                       for ch in name)
    if len(name) > _NAME_MAX:
        digest = hashlib.sha256(schedule_name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{name[:_NAME_MAX - 17]}~{digest}"
    return f"cron:{name}:{fire_time.strftime('%Y-%m-%dT%H:%M:%SZ')}"


#: Room for the name in a job id: "cron:" + name + ":" + 20-character time <= 255.
_NAME_MAX = 255 - len("cron:") - 1 - 20


def interval_due(every_s: float, last_run_at: datetime, now: datetime) -> schedules.schedstate:
    """Due once per epoch-aligned bucket: every beat fires at the same boundaries.

    Celery's own interval check (``last_run_at + every``) drifts with each
    beat's loop latency, so two beats can straddle a boundary and, between
    them, skip a bucket; aligning the due time to the buckets cannot.
    """
    every_s = max(every_s, 1.0)
    to_next = every_s - (now.timestamp() % every_s)
    due = int(now.timestamp() // every_s) > int(last_run_at.timestamp() // every_s)
    return schedules.schedstate(due, to_next)


class _Firing:
    """An entry as Celery's ``apply_async`` reads it, plus the firing's job id as ``task_id``.

    The scheduler's own entry is left as the model made it.
    """

    def __init__(self, entry: Any, job_id: str) -> None:
        self._entry = entry
        self.options = {**entry.options, "task_id": job_id}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)


class ExactlyOnceScheduler(DatabaseScheduler):
    """``DatabaseScheduler`` whose firings are deduplicated by (schedule, fire time)."""

    def is_due(self, entry):
        state = entry.is_due()
        schedule = entry.schedule
        plain_interval = isinstance(schedule, schedules.schedule) and not isinstance(
            schedule, schedules.crontab
        )
        model = getattr(entry, "model", None)
        if not plain_interval or (model is not None and not model.enabled) or not entry.last_run_at:
            return state
        if getattr(model, "one_off", False) or getattr(model, "expires", None):
            return state
        return interval_due(schedule.run_every.total_seconds(), entry.last_run_at, self.app.now())

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        """Celery's own ``apply_async``, with the firing's job id as the task id.

        A schedule naming anything but a job (a typo, ``celery.starmap``, a
        task of another app) is refused here, loudly (beat logs the error at
        each firing), instead of sending a message every worker would reject.
        """
        task = self.app.tasks.get(entry.task)
        if not isinstance(task, RecordingTask):
            raise SchedulingError(
                f"schedule {entry.name!r} names task {entry.task!r}, which is not a job "
                "(<queue>.<job name> of a @processor): not sent"
            )
        now = self.app.now()
        last = entry.last_run_at
        tz = getattr(entry.schedule, "tz", None)
        if tz is not None and last is not None:
            last = last.astimezone(tz)
            now = now.astimezone(tz)
        job_id = firing_job_id(entry.name, firing_time(entry.schedule, last, now))
        if advance:  # as Celery does: the run is recorded before the task is sent
            entry = self.reserve(entry)
        return super().apply_async(_Firing(entry, job_id), producer=producer, advance=False,
                                   **kwargs)


__all__ = ["ExactlyOnceScheduler", "firing_job_id", "firing_time"]
