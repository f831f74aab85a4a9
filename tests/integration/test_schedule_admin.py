"""Schedules in Django admin offer what the service honours and check a schedule when saved."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django_celery_beat.models import CrontabSchedule, PeriodicTask, SolarSchedule

URL = "/admin/django_celery_beat/periodictask/"


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    return client


def _form(**changes) -> dict:
    crontab = CrontabSchedule.objects.get_or_create(minute="0", hour="*")[0]
    form = {
        "name": "nightly-notes", "regtask": "notifications.notify-user", "task": "",
        "crontab": crontab.pk, "interval": "", "clocked": "", "args": "[]",
        "kwargs": json.dumps({"user_id": 1, "message": "hi"}), "enabled": "on", "priority": "",
        "expire_seconds": "", "description": "", "start_time_0": "", "start_time_1": "",
        "expires_0": "", "expires_1": "",
    }
    return {**form, **changes}


def test_the_job_list_offers_every_declared_job_with_its_arguments(admin_client):
    html = admin_client.get(f"{URL}add/").content.decode()
    assert "analytics · hourly-stats — takes no arguments" in html
    assert "notifications · notify-user — user_id, message" in html
    assert "1 (CRITICAL)" in html and "5 (BACKGROUND)" in html
    for field in ('name="queue"', 'name="routing_key"', 'name="exchange"', 'name="solar"'):
        assert field not in html  # not offered: the job's queue is its own


def test_a_valid_schedule_is_saved(admin_client):
    response = admin_client.post(f"{URL}add/", _form(priority="2"))
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = PeriodicTask.objects.get(name="nightly-notes")
    assert (saved.task, saved.priority) == ("notifications.notify-user", 2)


@pytest.mark.parametrize("changes, message", [
    ({"kwargs": json.dumps({"user_id": 1})}, "missing a required argument: &#x27;message&#x27;"),
    ({"kwargs": json.dumps({"user_id": 1, "message": "x", "colour": "red"})},
     "unexpected keyword argument"),
    ({"kwargs": "[1, 2]"}, "kwargs a JSON object"),
    ({"regtask": "", "task": "reports.made-up"}, "is not a declared job"),
    ({"priority": "7"}, "Select a valid choice"),
])
def test_a_schedule_that_would_fail_at_its_firing_is_refused_when_saved(admin_client, changes,
                                                                        message):
    response = admin_client.post(f"{URL}add/", _form(**changes))
    html = response.content.decode()
    assert response.status_code == 200 and message in html, html[:3000]
    assert not PeriodicTask.objects.filter(name="nightly-notes").exists()


def test_a_solar_schedule_is_refused(db):
    from tasks.forms import ScheduleForm

    solar = SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4)
    form = ScheduleForm(data={**_form(), "crontab": "", "solar": solar.pk})
    assert not form.is_valid()
    assert "solar schedules are not supported" in str(form.errors)


def test_the_admin_index_names_queue_stats_once(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "Queue stats" in html and "Queue statss" not in html
