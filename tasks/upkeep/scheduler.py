"""Beat scheduler that fires each schedule exactly once per firing.

django-celery-beat's ``DatabaseScheduler`` (schedules edited in admin), plus:
every firing gets a deterministic job id ``cron:<schedule>:<fire time>``.
The job row is inserted under that primary key before anything is
published, so two beat processes running at once, or a beat restarted
before it saved ``last_run_at``, add one job per firing, never two.

The fire time is the schedule's nominal time, not the moment beat woke up:
- crontab: the first cron time after the entry's last run (what every beat
  process computes alike), to the minute, in UTC;
- interval: the start of an ``every``-long bucket since the epoch: the one after
  the last firing, so a tick late by more than ``every`` (or a beat restarted)
  still fires each bucket once, back to ``MAX_CATCH_UP_S``; else the current one.

Daylight-saving rule (crontab in a zone with DST, e.g. Europe/Berlin 02:30):
a wall time skipped by spring-forward runs once, at the same UTC instant it
would have had on the old offset (02:30 CET = 03:30 CEST on 2026-03-29); a
wall time that occurs twice at fall-back runs once, at its first occurrence
(02:30 CEST on 2026-10-25). ``tests/unit/test_beat.py`` pins both.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from celery import schedules
from celery.beat import SchedulingError
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from tasks.enqueue.task import RecordingTask
from tasks.jobs.spec import valid_job_id


def firing_time(schedule, last_run_at: datetime, now: datetime) -> datetime:
    """The nominal time of the firing that is due now (UTC, whole seconds)."""
    if isinstance(schedule, schedules.crontab):
        # The first cron time after the last run, whatever the clock says now: beats
        # that woke at different moments name the same firing.
        start, delta, _ = schedule.remaining_delta(last_run_at)
        return (start + delta).astimezone(UTC).replace(second=0, microsecond=0)
    if isinstance(schedule, schedules.schedule):
        every = max(schedule.run_every.total_seconds(), 1.0)
        bucket = current = int(now.timestamp() // every) * every
        if last_run_at is not None:
            # The bucket after the last firing, not the current one: a tick late by more
            # than ``every`` (a slow database write, a beat restarted) would skip it.
            following = (int(last_run_at.timestamp() // every) + 1) * every
            if current - MAX_CATCH_UP_S <= following < current:
                bucket = following
        return datetime.fromtimestamp(bucket, UTC)
    clocked_time = getattr(schedule, "clocked_time", None)  # django-celery-beat's clocked
    if clocked_time is not None:
        return clocked_time.astimezone(UTC).replace(microsecond=0)
    raise SchedulingError(f"{schedule!r} has no firing time every beat agrees on (solar?): "
                          "use a crontab, an interval or a clocked time")


#: An interval firing missed by a late tick or while no beat ran is still fired if it
#: fell due this recently (one per tick, oldest first); older ones are not replayed.
MAX_CATCH_UP_S = 60.0


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
    current = int(now.timestamp() // every_s)
    last = int(last_run_at.timestamp() // every_s)
    # Behind by more than this firing (a late tick, a restarted beat): look again at once,
    # so the missed buckets (``firing_time``) are fired now, not one per interval.
    to_next = 0.0 if current > last + 1 else every_s - (now.timestamp() % every_s)
    return schedules.schedstate(current > last, to_next)


class _Firing:
    """An entry as Celery's ``apply_async`` reads it, plus the firing's job id as ``task_id``.

    The scheduler's own entry is left as the model made it.
    """

    def __init__(self, entry: Any, job_id: str) -> None:
        self._entry = entry
        self.options = {**entry.options, "task_id": job_id}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)


#: Checked again this long after a schedule turned out disabled (django-celery-beat's delay).
DISABLED_RECHECK_S = 5.0
#: A schedule that will not fire is looked at again after this long (it may be edited).
NEVER_CHECK_S = 300.0

logger = logging.getLogger("tasks.upkeep.scheduler")


class RecordedEntry(ModelEntry):
    """django-celery-beat's entry that never writes back a field a person edits.

    ``ModelEntry.save`` reads the row, then saves every field of it: an admin's
    change committed in between (a disable, say) was overwritten with the
    values read. Here beat writes its own bookkeeping alone, by one UPDATE:
    last run and run count; and when an expiry or a one-off run ends a
    schedule, ``enabled`` (and nothing else) by an UPDATE too.
    """

    def save(self) -> None:
        type(self.model)._default_manager.filter(pk=self.model.pk).update(
            last_run_at=self.model.last_run_at, total_run_count=self.model.total_run_count)

    def __init__(self, model: Any, app: Any = None) -> None:
        super().__init__(model, app=app)
        from tasks.models import RepeatLimit

        self.limit = (RepeatLimit.objects.filter(schedule_id=model.pk)
                      .values_list("limit", flat=True).first())

    def __next__(self) -> RecordedEntry:
        entry = super().__next__()
        entry.limit = self.limit
        return entry

    def gate(self) -> schedules.schedstate | None:
        """Not due for a reason of the row (disabled, not started, expired, one-off done,
        run limit reached, solar); else None."""
        model = self.model
        if not model.enabled:
            return schedules.schedstate(False, DISABLED_RECHECK_S)
        if model.solar_id is not None:
            if not getattr(self, "_refused", False):
                logger.error("schedule %s is solar: not fired (two beats would not agree on "
                             "its firing time); use a crontab, an interval or a clocked time",
                             model.name)
                self._refused = True
            return schedules.schedstate(False, NEVER_CHECK_S)
        now = timezone.now()
        if model.start_time is not None and now < model.start_time:
            return schedules.schedstate(False, max((model.start_time - now).total_seconds(), 1.0))
        if model.expires is not None and now >= model.expires:
            return self._end(model)
        if model.one_off and model.total_run_count > 0:
            return self._end(model)
        if self.limit is not None and model.total_run_count >= self.limit:
            return self._end(model)
        return None

    def is_due(self) -> schedules.schedstate:
        gate = self.gate()
        if gate is not None:
            return gate
        last_run_at = self.last_run_at
        if timezone.is_naive(last_run_at):
            last_run_at = timezone.make_aware(last_run_at, UTC)
        return self.schedule.is_due(last_run_at.astimezone(self.app.timezone))

    def _end(self, model: Any) -> schedules.schedstate:
        """Expired or one-off done: disabled on record, by an UPDATE of ``enabled`` alone."""
        from django_celery_beat.models import PeriodicTasks

        type(model)._default_manager.filter(pk=model.pk).update(enabled=False)
        model.enabled = False
        PeriodicTasks.update_changed()  # other beats reload it
        return schedules.schedstate(False, DISABLED_RECHECK_S)


def _plain_interval(schedule: Any) -> bool:
    return isinstance(schedule, schedules.schedule) and not isinstance(
        schedule, schedules.crontab)


class ExactlyOnceScheduler(DatabaseScheduler):
    """``DatabaseScheduler`` whose firings are deduplicated by (schedule, fire time)."""

    Entry = RecordedEntry

    def is_due(self, entry):
        gate = entry.gate() if isinstance(entry, RecordedEntry) else None
        if gate is not None:
            return gate
        schedule = entry.schedule
        if not _plain_interval(schedule) or not entry.last_run_at:
            return entry.is_due()
        return interval_due(schedule.run_every.total_seconds(), entry.last_run_at, self.app.now())

    def reserve(self, entry):
        """Celery's, but an interval firing's last run is its nominal time, not the moment
        beat got to it: the next tick then sees the following bucket due, and fires it
        even when this tick was late (``firing_time``)."""
        new_entry = super().reserve(entry)
        if _plain_interval(entry.schedule) and entry.last_run_at:
            last = entry.last_run_at
            if timezone.is_naive(last):
                last = timezone.make_aware(last, UTC)
            fire_time = firing_time(entry.schedule, last, self.app.now())
            new_entry.last_run_at = new_entry.model.last_run_at = fire_time
        return new_entry

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
