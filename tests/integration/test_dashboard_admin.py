"""Django admin: Job bulk actions, and each schedule's next five runs in its time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tasks.models import Job, JobLog
from tasks.operate.dashboard.next_runs import next_runs
from tasks.queues import QueueName, add_repeatable_job

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    return client


def test_next_five_runs_of_a_cron_in_its_zone_across_dst(db):
    task = add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, "30 2 * * *",
                              timezone="Europe/Berlin")
    runs = next_runs(task, now=datetime(2026, 3, 27, 12, 0, tzinfo=BERLIN))
    assert runs.zone == "Europe/Berlin"
    assert [f"{t:%m-%d %H:%M %Z}" for t in runs.times] == [
        "03-28 02:30 CET",
        "03-29 03:30 CEST",  # 02:30 does not exist that night: the clock jumps to 03:00
        "03-30 02:30 CEST", "03-31 02:30 CEST", "04-01 02:30 CEST",
    ]


def test_next_runs_of_interval_and_disabled_schedules(db):
    every = IntervalSchedule.objects.create(every=90, period=IntervalSchedule.MINUTES)
    start = datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo("UTC"))
    task = PeriodicTask.objects.create(name="every-90", task="analytics.hourly-stats",
                                       interval=every, last_run_at=start)
    runs = next_runs(task, n=3, now=datetime(2026, 11, 28, 13, 0, tzinfo=ZoneInfo("UTC")))
    assert [f"{t:%H:%M}" for t in runs.times] == ["14:30", "16:00", "17:30"]
    task.enabled = False
    assert next_runs(task).note == "disabled: it does not run"


def test_schedule_change_page_lists_the_next_five_runs(db, admin_client):
    task = add_repeatable_job(QueueName.ANALYTICS, "weekly-report", {}, "0 9 * * 1",
                              timezone="Europe/Berlin")
    html = admin_client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
                            ).content.decode()
    assert "Next five runs" in html and 'data-zone="Europe/Berlin"' in html
    assert html.count("<li>Mon ") == 5 and " 09:00 CE" in html


def test_job_admin_bulk_actions_report_how_many_changed(db, admin_client):
    now = timezone.now()
    Job.objects.bulk_create([
        Job(id="f1", queue="email", name="send-welcome-email", state="failed", created_at=now),
        Job(id="f2", queue="email", name="send-welcome-email", state="failed", created_at=now),
        Job(id="c1", queue="email", name="send-welcome-email", state="completed",
            created_at=now),
    ])
    url = "/admin/tasks/job/"
    response = admin_client.post(url, {"action": "retry_jobs",
                                       "_selected_action": ["f1", "f2", "c1"]}, follow=True)
    assert "2 job(s) retried." in response.content.decode()
    assert set(Job.objects.filter(state="waiting").values_list("id", flat=True)) == {"f1", "f2"}
    assert JobLog.objects.filter(job_id="f1", message="retried by root").exists()
    response = admin_client.post(url, {"action": "cancel_jobs",
                                       "_selected_action": ["f1", "c1"]}, follow=True)
    assert "1 job(s) cancelled or asked to stop." in response.content.decode()
    response = admin_client.post(url, {"action": "remove_jobs",
                                       "_selected_action": ["f1", "c1"]}, follow=True)
    assert "2 job(s) removed." in response.content.decode()
    assert list(Job.objects.values_list("id", flat=True)) == ["f2"]
    listing = admin_client.get(url, {"state": "waiting", "q": "f2"})
    assert listing.status_code == 200 and "f2" in listing.content.decode()
