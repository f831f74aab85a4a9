"""Every URL pattern answers without a server error: anonymous, staff, superuser.

The resolver is walked, not a hand-kept list, so a route added later (or one
whose template is missing, as the auth pages' were) is visited too. Each
placeholder is filled with a row that exists where there is one.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from tasks.models import Job
from tasks.queues import QueueName, add_repeatable_job
from tests.integration.helpers import staff_user

#: Answers 503 by design when the service is down (no worker runs in this test).
DELIBERATE_503 = {"/queues/health"}


def walk(patterns, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def fill(route: str, samples: dict[str, str], object_ids: dict[str, str]) -> str:
    """A concrete path for ``route`` (``<conv:name>`` and ``(?P<name>…)`` alike)."""
    model_prefix = next((p for p in object_ids if route.startswith(p)), None)

    def value(name: str) -> str:
        if name == "object_id" and model_prefix:
            return object_ids[model_prefix]
        return samples[name]

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: value(m.group(1)), route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value(m.group(1)), path)
    return "/" + path.replace("^", "").replace("$", "")


@pytest.fixture
def urls(db) -> list[str]:
    now = timezone.now()
    job = Job.objects.create(id="walk-1", queue="email", name="send-welcome-email",
                             state="failed", created_at=now - timedelta(minutes=5),
                             finished_at=now, errors=[{"attempt": 1, "error": "boom"}])
    root = User.objects.create_superuser("root", "root@example.com", "pw-12345678")
    group = Group.objects.create(name="walkers")
    schedule = add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, "0 * * * *")
    object_ids = {
        "admin/tasks/job/": job.pk, "admin/auth/user/": str(root.pk),
        "admin/auth/group/": str(group.pk),
        "admin/django_celery_beat/periodictask/": str(schedule.pk),
        "admin/django_celery_beat/crontabschedule/": str(schedule.crontab_id),
    }
    samples = {
        "object_id": "1", "id": str(root.pk), "job_id": job.pk, "queue": "email",
        "state": "failed", "uidb64": "MQ", "token": "set-password", "app_label": "tasks",
        "url": "no/such/page/", "content_type_id": str(ContentType.objects.get_for_model(Job).pk),
    }
    found = sorted({fill(route, samples, object_ids) for route in walk(get_resolver().url_patterns)})
    assert len(found) > 100 and not [u for u in found if "<" in u or "(?P" in u]
    return found


def server_errors(client: Client, urls: list[str]) -> dict[str, int]:
    errors = {}
    for url in urls:
        response = client.get(url)
        if response.status_code < 500:
            continue
        if url in DELIBERATE_503 and response.status_code == 503:
            assert response.json()["status"] == "fail"
            continue
        errors[url] = response.status_code
    return errors


@pytest.mark.parametrize("who", ["anonymous", "staff", "superuser"])
def test_no_url_answers_with_a_server_error(urls, who):
    client = Client(raise_request_exception=False)
    if who == "staff":
        client.force_login(staff_user("staff-only"))
    elif who == "superuser":
        client.force_login(User.objects.get(username="root"))
    assert server_errors(client, urls) == {}


def test_the_auth_pages_render_in_the_dashboards_look(db, client):
    for url in ("/accounts/login/", "/accounts/password_reset/", "/accounts/reset/done/",
                "/accounts/password_reset/done/", "/accounts/reset/MQ/set-password/"):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "IntelGraph Tasks" in html and "dashboard/dashboard.css" in html, url
    client.force_login(staff_user("ops"))
    assert "Change password" in client.get("/accounts/password_change/").content.decode()
    logged_out = client.post("/accounts/logout/")
    assert logged_out.status_code == 200 and "Logged out" in logged_out.content.decode()
