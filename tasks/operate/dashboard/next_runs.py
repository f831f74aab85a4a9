"""The next run times of a django-celery-beat schedule, in the schedule's own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

#: Cron times are computed one after another; a schedule that never matches stops here.
MAX_STEPS = 1000


@dataclass(frozen=True)
class NextRuns:
    zone: str
    times: list[datetime]
    note: str = ""


def _cron_times(cron: crontab, zone: tzinfo, after: datetime, n: int) -> list[datetime]:
    found: list[datetime] = []
    last = after.astimezone(zone)
    for _ in range(MAX_STEPS):
        if len(found) == n:
            break
        start, delta, _now = cron.remaining_delta(last, tz=zone)
        moment = start + delta
        if moment <= last:  # never go backwards (cannot happen for valid crons)
            break
        # Wall-clock arithmetic can land on a time skipped by DST; normalise its offset.
        moment = moment.astimezone(UTC).astimezone(zone)
        found.append(moment)
        last = moment
    return found


def next_runs(task: PeriodicTask, n: int = 5, now: datetime | None = None) -> NextRuns:
    now = now or timezone.now()
    default_zone = ZoneInfo(settings.TIME_ZONE)
    if not task.enabled:
        return NextRuns(str(default_zone), [], "disabled: it does not run")
    if task.one_off and task.total_run_count:
        return NextRuns(str(default_zone), [], "one-off task that has already run")
    after = max(now, task.start_time) if task.start_time else now
    if task.crontab_id:
        zone = task.crontab.timezone
        zone = zone if isinstance(zone, tzinfo) else ZoneInfo(str(zone))
        times = _cron_times(task.crontab.schedule, zone, after, n)
    elif task.interval_id:
        zone = default_zone
        every = timedelta(**{task.interval.period: task.interval.every})
        base = task.last_run_at or task.start_time or now
        first = base + every
        if first <= after:
            skipped = (after - first) // every + 1
            first += skipped * every
        times = [(first + i * every).astimezone(zone) for i in range(n)]
    elif task.clocked_id:
        zone = default_zone
        clocked = task.clocked.clocked_time
        times = [clocked.astimezone(zone)] if clocked > now else []
    else:
        return NextRuns(str(default_zone), [], "solar schedules are not previewed")
    if task.one_off:
        times = times[:1]
    if task.expires:
        times = [t for t in times if t < task.expires]
    return NextRuns(str(zone), times)
