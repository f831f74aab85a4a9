"""Cron schedules in the database: seeding, add_repeatable_job, and beat picking up admin edits."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, IntervalSchedule, PeriodicTask

from tasks.jobs.errors import InvalidRepeatError
from tasks.models import Job
from tasks.queues import QueueName, add_repeatable_job
from tests import processes
from tests.processes import wait_for
from tests.testapp.models import Execution


def test_seed_schedules_is_idempotent_and_keeps_edits(db, settings):
    call_command("seed_schedules", verbosity=0)
    call_command("seed_schedules", verbosity=0)
    seeded = {p.name: p for p in PeriodicTask.objects.all()}
    assert set(seeded) == {"daily-cleanup", "hourly-stats", "weekly-report"}
    cleanup = seeded["daily-cleanup"]
    assert cleanup.task == "analytics.daily-cleanup"
    assert (cleanup.crontab.minute, cleanup.crontab.hour) == ("0", "2")
    assert str(cleanup.crontab.timezone) == settings.TIME_ZONE
    weekly = seeded["weekly-report"].crontab
    assert (weekly.minute, weekly.hour, weekly.day_of_week) == ("0", "9", "1")
    PeriodicTask.objects.filter(name="hourly-stats").update(enabled=False)
    call_command("seed_schedules", verbosity=0)
    assert PeriodicTask.objects.get(name="hourly-stats").enabled is False


def test_add_repeatable_job_creates_then_updates_by_name(db):
    first = add_repeatable_job(QueueName.ANALYTICS, "daily-cleanup", {}, "0 2 * * *")
    second = add_repeatable_job(QueueName.ANALYTICS, "daily-cleanup", {}, "30 3 * * *")
    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.crontab.minute, second.crontab.hour) == ("30", "3")
    assert PeriodicTask.objects.filter(name="daily-cleanup").count() == 1


def test_admin_edit_is_picked_up_by_running_beat(service, live_broker, tmp_path, client):
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    periodic = PeriodicTask.objects.create(
        name="ledger-tick", task="analytics.record-analytics", interval=every_second,
        kwargs=json.dumps({"key": "beat"}), enabled=False,
    )
    beat = processes.beat(live_broker, tmp_path, BEAT_MAX_LOOP_INTERVAL="1").start()
    try:
        admin = User.objects.create_superuser("root", "root@example.com", "pw-12345678")
        client.force_login(admin)
        change_url = f"/admin/django_celery_beat/periodictask/{periodic.pk}/change/"
        form = client.get(change_url)
        assert form.status_code == 200
        response = client.post(change_url, {
            "name": "ledger-tick", "regtask": "analytics.record-analytics", "task": "",
            "interval": every_second.pk, "args": "[]", "kwargs": json.dumps({"key": "beat"}),
            "enabled": "on", "priority": "", "queue": "", "exchange": "", "routing_key": "",
            "headers": "{}", "expire_seconds": "", "description": "", "start_time_0": "",
            "start_time_1": "", "expires_0": "", "expires_1": "", "clocked": "", "crontab": "",
            "solar": "",
        })
        assert response.status_code == 302, response.content.decode()[:2000]
        wait_for(lambda: Execution.objects.filter(key="beat").count() >= 2, 30,
                 message=f"beat to fire the enabled schedule (log: {beat.log_path})")
        jobs = Job.objects.filter(name="record-analytics")
        assert jobs.count() >= 2
        assert all(j.data == {"key": "beat"} and j.queue == "analytics" for j in jobs)
    finally:
        beat.stop()


@pytest.mark.parametrize("options, message", [
    ({"cron": "* * * * *", "every": 5000}, "exactly one of cron and every"),
    ({}, "exactly one of cron and every"),
    ({"every": 999}, "between 1000 ms"),
    ({"every": float("nan")}, "between 1000 ms"),
    ({"every": "5s"}, "give milliseconds or a timedelta"),
    ({"every": 5000, "limit": 0}, "limit 0"),
    ({"every": 5000, "start": datetime(2026, 1, 1)}, "timezone-aware"),
    ({"every": 5000, "start": datetime(2026, 1, 2, tzinfo=UTC),
      "end": datetime(2026, 1, 1, tzinfo=UTC)}, "is not after start"),
])
def test_repeat_options_are_checked_at_the_call(db, options, message):
    with pytest.raises(InvalidRepeatError, match=message):
        add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, **options)
    assert not PeriodicTask.objects.exists()


def test_every_limit_and_start_are_honoured_by_a_live_beat(service, live_broker, tmp_path):
    start = timezone.now() + timedelta(seconds=3)
    periodic = add_repeatable_job(QueueName.ANALYTICS, "record-analytics", {"key": "repeat"},
                                  every=timedelta(seconds=1), limit=3, start=start,
                                  schedule_name="three-times")
    beat = processes.beat(live_broker, tmp_path, BEAT_MAX_LOOP_INTERVAL="1").start()
    try:
        wait_for(lambda: Execution.objects.filter(key="repeat").count() >= 3, 40,
                 message=f"three firings (log: {beat.log_path})")
        wait_for(lambda: not PeriodicTask.objects.get(pk=periodic.pk).enabled, 15,
                 message="beat to end the schedule after its limit")
        time.sleep(2.5)
    finally:
        beat.stop()
    jobs = Job.objects.filter(name="record-analytics", id__startswith="cron:three-times:")
    assert jobs.count() == 3 and Execution.objects.filter(key="repeat").count() == 3
    assert min(job.created_at for job in jobs) >= start  # none before the start time


def test_a_clocked_schedule_fires_once_with_two_beats(service, live_broker, tmp_path):
    at = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    PeriodicTask.objects.create(
        name="once-at", task="analytics.record-analytics", one_off=True,
        clocked=ClockedSchedule.objects.create(clocked_time=at),
        kwargs=json.dumps({"key": "clocked"}))
    beats = [processes.beat(live_broker, tmp_path, f"beat{n}", BEAT_MAX_LOOP_INTERVAL="1").start()
             for n in (1, 2)]
    try:
        wait_for(lambda: Execution.objects.filter(key="clocked").exists(), 30,
                 message="the clocked firing")
        time.sleep(4)
    finally:
        for beat in beats:
            beat.stop()
    assert list(Job.objects.filter(name="record-analytics").values_list("id", flat=True)) == [
        f"cron:once-at:{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"]
    assert Execution.objects.filter(key="clocked").count() == 1


def test_a_schedule_beat_has_not_fired_for_two_intervals_is_reported(db):
    from tasks.upkeep.schedules import overdue_schedules

    hourly = add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, "0 * * * *")
    every = add_repeatable_job(QueueName.ANALYTICS, "daily-cleanup", {}, every=10_000)
    now = timezone.now()
    PeriodicTask.objects.filter(pk=hourly.pk).update(date_changed=now - timedelta(minutes=90))
    PeriodicTask.objects.filter(pk=every.pk).update(date_changed=now - timedelta(hours=1))
    Job.objects.create(id=f"cron:daily-cleanup:{now:%Y-%m-%dT%H:%M:%SZ}", queue="analytics",
                       name="daily-cleanup", created_at=now - timedelta(seconds=5))

    assert overdue_schedules(now) == []  # hourly: due within the last 90 min, two hours allowed
    late = overdue_schedules(now + timedelta(hours=2))
    assert sorted(message.split(" was due")[0] for message in late) == [
        "schedule daily-cleanup", "schedule hourly-stats"]
    PeriodicTask.objects.filter(pk=hourly.pk).update(enabled=False)
    assert len(overdue_schedules(now + timedelta(seconds=40))) == 1  # the 10 s one, 35 s late


def test_health_names_an_overdue_schedule(db):
    from tasks.operate import health

    late = add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, every=1000)
    PeriodicTask.objects.filter(pk=late.pk).update(date_changed=timezone.now() - timedelta(minutes=1))

    report = health.report()
    assert any(problem.startswith("schedule hourly-stats was due at") for problem in report.problems)
    assert report.status == "fail"


def test_the_dashboard_names_an_overdue_schedule(db, client):
    from tasks.jobs import permissions
    from tests.integration.helpers import staff_user

    late = add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, every=1000)
    PeriodicTask.objects.filter(pk=late.pk).update(date_changed=timezone.now() - timedelta(minutes=1))
    client.force_login(staff_user("viewer", permissions.VIEW))

    html = client.get("/queues/").content.decode()

    assert "Schedules beat has not fired" in html and "schedule hourly-stats was due at" in html
