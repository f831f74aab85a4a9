"""Repeatable (cron) jobs stored as django-celery-beat periodic tasks.

People edit them in Django admin; beat's ``DatabaseScheduler`` notices the
change marker and applies edits without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.validators import crontab_validator

from tasks.enqueue.task import get_task
from tasks.jobs.config import QueueName
from tasks.jobs.errors import InvalidCronError
from tasks.jobs.routing import parse_queue
from tasks.jobs.spec import parse_data, parse_priority

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
    cron: str,
    *,
    timezone: str | None = None,
    priority: int | None = None,
    schedule_name: str | None = None,
) -> PeriodicTask:
    """Create or update (by ``schedule_name``, default ``name``) a cron schedule for a job."""
    queue_name = parse_queue(queue)
    task = get_task(queue_name, name)
    data = parse_data(data)
    task.bind_data(kwargs=data)
    task.check_data(data)
    fields = parse_cron(cron)
    job_priority = parse_priority(priority) if priority is not None else None
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    with transaction.atomic():
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone=timezone or settings.TIME_ZONE,
        )
        periodic, _ = PeriodicTask.objects.update_or_create(
            name=schedule_name or name,
            defaults={
                "task": task.name,
                "crontab": schedule,
                "interval": None,
                "kwargs": json.dumps(data),
                "queue": queue_name.value,
                "priority": job_priority,
                "enabled": True,
                "description": f"{queue_name.value}/{name} at '{cron}'",
            },
        )
    return periodic


def seed_default_schedules() -> list[PeriodicTask]:
    """Idempotent: creates the defaults, leaves schedules people edited alone."""
    seeded = []
    for queue, name, cron in DEFAULT_SCHEDULES:
        existing = PeriodicTask.objects.filter(name=name).first()
        seeded.append(existing or add_repeatable_job(queue, name, {}, cron))
    return seeded
