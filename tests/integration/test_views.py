"""Signup and the JSON job API through Django's test client and a real worker."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from tasks.jobs import permissions
from tasks.models import Job
from tests.integration.helpers import queue_length, staff_user, wait_state


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # signup limits count in the cache
    yield
    cache.clear()


@pytest.fixture
def staff_client(client):
    client.force_login(staff_user("ops", permissions.ENQUEUE, permissions.VIEW))
    return client


def _post(client, body):
    return client.post("/api/jobs", data=json.dumps(body), content_type="application/json")


def test_signup_sends_the_welcome_email(service, client):
    response = client.post("/signup/", {"username": "newbie", "email": "newbie@example.com",
                                        "password1": "a-Long-pass-123", "password2": "a-Long-pass-123"})
    assert response.status_code == 201
    job = Job.objects.get(name="send-welcome-email")
    assert job.data == {"user_id": User.objects.get(username="newbie").pk}
    done = wait_state(job.id, "completed")
    assert done.result["to"] == "newbie@example.com"


def test_invalid_signup_records_no_job(service, client):
    response = client.post("/signup/", {"username": "x", "email": "not-an-email",
                                        "password1": "a", "password2": "b"})
    assert response.status_code == 400
    assert Job.objects.count() == 0 and User.objects.count() == 0


def test_api_creates_a_job_and_reports_its_state(service, staff_client, settings):
    settings.JOB_API_ALLOWED = ["data-processing.record"]
    response = _post(staff_client, {"queue": "data-processing", "name": "record",
                                    "data": {"key": "api"}, "options": {"priority": 1}})
    assert response.status_code == 201
    job_id = response.json()["id"]
    wait_state(job_id, "completed")
    detail = staff_client.get(f"/api/jobs/{job_id}").json()
    assert detail["state"] == "completed"
    assert detail["result"] == {"key": "api"}
    assert detail["priority"] == 1 and detail["error"] is None


@pytest.mark.parametrize(
    "body, message",
    [
        ({"queue": "emial", "name": "send-welcome-email"}, "queue 'emial' is not one of"),
        ({"queue": "email", "name": "nope"}, "job name 'nope' is not registered"),
        ({"queue": "notifications", "name": "send-reminder", "data": {"message": "a"},
          "options": {"delay": -5}}, "delay -5 is invalid"),
        ({"queue": "notifications", "name": "send-reminder", "data": {"message": "a"},
          "options": {"priority": 7}},
         "priority 7 is outside"),
        ({"queue": "notifications", "name": "send-reminder", "data": {"message": "a"},
          "options": {"attempts": 0}},
         "attempts 0 is invalid"),
        ({"queue": "notifications", "name": "send-reminder", "options": {"colour": 1}},
         "unknown options ['colour']"),
        ({"queue": "notifications", "name": "send-reminder", "data": {"message": "x" * 70000}},
         "over the 65536-byte limit"),
    ],
)
def test_api_rejects_bad_input_with_the_reason(service, staff_client, body, message):
    response = _post(staff_client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Job.objects.count() == 0
    assert queue_length("notifications") == 0


def test_api_rejects_a_body_that_is_not_json(db, staff_client):
    response = staff_client.post("/api/jobs", data="{nope", content_type="application/json")
    assert response.status_code == 400 and "not JSON" in response.json()["error"]


def test_api_requires_a_login_and_its_permission(db, client):
    assert _post(client, {"queue": "email"}).status_code == 401
    assert client.get("/api/jobs/x").status_code == 401
    user = User.objects.create_user("plain", "p@example.com", "pw-12345678")
    client.force_login(user)
    assert _post(client, {"queue": "email"}).status_code == 403
    client.force_login(staff_user("staff-only"))
    assert _post(client, {"queue": "email"}).status_code == 403


def test_api_unknown_job_is_404(db, staff_client):
    assert staff_client.get("/api/jobs/missing").status_code == 404


def test_api_enforces_csrf_for_session_clients(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user("s", permissions.ENQUEUE))
    assert _post(client, {"queue": "email", "name": "send-welcome-email"}).status_code == 403
