"""Repeatable (cron) jobs stored as django-celery-beat periodic tasks.

People edit them in Django admin; beat's ``DatabaseScheduler`` notices the
change marker and applies edits without a restart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone as dj_timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.validators import crontab_validator

from tasks.enqueue.task import get_task
from tasks.jobs.config import QueueName
from tasks.jobs.errors import InvalidCronError, InvalidRepeatError
from tasks.jobs.routing import parse_queue
from tasks.jobs.spec import parse_data, parse_priority
from tasks.models import RepeatLimit

#: ``every`` bounds: beat fires at most once a second; a year is surely a unit mistake.
MIN_EVERY_MS = 1000
MAX_EVERY_MS = 365 * 24 * 3600 * 1000

#: The schedules ``manage.py seed_schedules`` creates (in ``TIME_ZONE``).
DEFAULT_SCHEDULES: tuple[tuple[QueueName, str, str], ...] = (
    (QueueName.ANALYTICS, "daily-cleanup", "0 2 * * *"),
    (QueueName.ANALYTICS, "hourly-stats", "0 * * * *"),
    (QueueName.ANALYTICS, "weekly-report", "0 9 * * 1"),
)


def parse_cron(expression: Any) -> tuple[str, str, str, str, str]:
    """Five fields: minute hour day-of-month month day-of-week."""
    if not isinstance(expression, str):
        raise InvalidCronError(expression, "give a string of five fields")
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidCronError(expression, f"expected 5 fields, got {len(fields)}")
    try:
        crontab_validator(expression)
    except ValidationError as exc:
        raise InvalidCronError(expression, "; ".join(exc.messages)) from None
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return minute, hour, day_of_month, month_of_year, day_of_week


def add_repeatable_job(
    queue: QueueName | str,
    name: str,
    data: Mapping[str, Any] | None,
    cron: str | None = None,
    *,
    every: int | timedelta | None = None,
    limit: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    timezone: str | None = None,
    priority: int | None = None,
    schedule_name: str | None = None,
) -> PeriodicTask:
    """Create or update (by ``schedule_name``, default ``name``) a repeating job.

    As BullMQ's repeat options: a ``cron`` pattern (in ``timezone``, default
    ``TIME_ZONE``) or ``every`` (milliseconds or a timedelta, at least a
    second), at most ``limit`` firings, from ``start`` until ``end``.
    """
    queue_name = parse_queue(queue)
    task = get_task(queue_name, name)
    data = parse_data(data)
    task.bind_data(kwargs=data)
    task.check_data(data)
    if (cron is None) == (every is None):
        raise InvalidRepeatError("give exactly one of cron and every")
    job_priority = parse_priority(priority) if priority is not None else None
    run_limit = _parse_limit(limit)
    start, end = _parse_window(start, end)
    with transaction.atomic():
        if cron is not None:
            minute, hour, day_of_month, month_of_year, day_of_week = parse_cron(cron)
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=minute, hour=hour, day_of_month=day_of_month,
                month_of_year=month_of_year, day_of_week=day_of_week,
                timezone=timezone or settings.TIME_ZONE,
            )
            schedule = {"crontab": crontab, "interval": None}
            described = f"at '{cron}'"
        else:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=_parse_every(every), period=IntervalSchedule.MICROSECONDS)
            schedule = {"crontab": None, "interval": interval}
            described = f"every {interval.every // 1000} ms"
        periodic, _ = PeriodicTask.objects.update_or_create(
            name=schedule_name or name,
            defaults={
                "task": task.name, **schedule, "solar": None, "clocked": None,
                "kwargs": json.dumps(data), "queue": None, "priority": job_priority,
                "enabled": True, "start_time": start, "expires": end, "one_off": False,
                "description": f"{queue_name.value}/{name} {described}",
            },
        )
        RepeatLimit.objects.filter(schedule=periodic).delete()
        if run_limit is not None:
            RepeatLimit.objects.create(schedule=periodic, limit=run_limit)
    return periodic


def _parse_every(every: Any) -> int:
    """``every`` in microseconds (the finest IntervalSchedule period) from ms or a timedelta."""
    if isinstance(every, timedelta):
        ms = every.total_seconds() * 1000
    elif isinstance(every, (int, float)) and not isinstance(every, bool):
        ms = float(every)
    else:
        raise InvalidRepeatError(f"every {every!r}: give milliseconds or a timedelta")
    if not math.isfinite(ms) or ms < MIN_EVERY_MS or ms > MAX_EVERY_MS:
        raise InvalidRepeatError(f"every {every!r}: between {MIN_EVERY_MS} ms (beat fires at "
                                 f"most once a second) and {MAX_EVERY_MS} ms (a year)")
    return int(ms * 1000)


def _parse_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRepeatError(f"limit {limit!r}: give a whole number of firings >= 1")
    return limit


def _parse_window(start: Any, end: Any) -> tuple[datetime | None, datetime | None]:
    for label, value in (("start", start), ("end", end)):
        if value is not None and not (isinstance(value, datetime) and value.tzinfo):
            raise InvalidRepeatError(f"{label} {value!r}: give a timezone-aware datetime")
    if start is not None and end is not None and end <= start:
        raise InvalidRepeatError(f"end {end} is not after start {start}")
    return start, end


def seed_default_schedules() -> list[PeriodicTask]:
    """Idempotent: creates the defaults, leaves schedules people edited alone."""
    seeded = []
    for queue, name, cron in DEFAULT_SCHEDULES:
        existing = PeriodicTask.objects.filter(name=name).first()
        seeded.append(existing or add_repeatable_job(queue, name, {}, cron))
    return seeded


#: A clocked (one-off) firing is overdue this long after its time.
CLOCKED_GRACE = timedelta(seconds=60)


def overdue_schedules(now: datetime | None = None) -> list[str]:
    """Enabled schedules that beat has not fired within two of their intervals after falling due.

    The last firing is the later of the schedule's ``last_run_at`` (beat saves
    it every few minutes) and its newest firing job (``cron:<name>:…``); a
    schedule that never fired counts from when it was last changed.
    """
    now = now or dj_timezone.now()
    late = []
    for periodic in (PeriodicTask.objects.filter(enabled=True)
                     .select_related("crontab", "interval", "clocked", "solar")):
        if periodic.solar_id is not None:
            late.append(f"schedule {periodic.name} is solar: beat does not fire it")
            continue
        if (periodic.start_time and periodic.start_time > now) or \
                (periodic.expires and periodic.expires <= now):
            continue
        last = _last_firing(periodic)
        due, period = _due_after(periodic, last)
        if due is not None and now > due + 2 * period:
            late.append(f"schedule {periodic.name} was due at {due:%Y-%m-%d %H:%M:%S %Z} and "
                        f"has not fired (is beat running?)")
    return late


def _last_firing(periodic: PeriodicTask) -> datetime:
    from django.db.models import Max

    from tasks.models import Job
    from tasks.upkeep.scheduler import firing_job_id

    prefix = firing_job_id(periodic.name, datetime(2000, 1, 1))[:-len("2000-01-01T00:00:00Z")]
    newest = (Job.objects.filter(pk__gte=prefix, pk__lt=prefix[:-1] + ";")
              .aggregate(newest=Max("created_at"))["newest"])
    candidates = [moment for moment in (periodic.last_run_at, newest) if moment is not None]
    return max(candidates) if candidates else periodic.date_changed


def _due_after(periodic: PeriodicTask, last: datetime) -> tuple[datetime | None, timedelta]:
    """The first firing due after ``last``, and the time to the one after it."""
    if periodic.clocked_id is not None:
        if periodic.total_run_count:
            return None, CLOCKED_GRACE
        return periodic.clocked.clocked_time, CLOCKED_GRACE / 2
    schedule = periodic.schedule
    if periodic.interval_id is not None:
        return last + schedule.run_every, schedule.run_every
    start, delta, _ = schedule.remaining_delta(last)
    due = start + delta
    following_start, following_delta, _ = schedule.remaining_delta(due + timedelta(seconds=1))
    return due, following_start + following_delta - due
