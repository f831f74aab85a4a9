"""Cron schedules in the database: seeding, add_repeatable_job, and beat picking up admin edits."""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

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
