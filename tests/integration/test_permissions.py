"""Every door checks a permission, not staff status (issue 13, point 4).

For each page, action and API call: a staff user with no permission is
refused and nothing changes; a user holding every permission but the one the
door needs is refused too; the needed permission alone (plus ``view_job`` for
actions taken from a job's page) is enough.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from settings.environment import BASE_DIR
from tasks.jobs import permissions as p
from tasks.models import Job, QueueControl
from tests.integration.helpers import staff_user

ALL = (p.VIEW, p.ENQUEUE, p.OPERATE, p.REMOVE)


@dataclass(frozen=True)
class Door:
    method: str
    url: str
    needs: tuple[str, ...]
    ok: int
    data: dict | None = None
    json: dict | None = None


DOORS = {
    "overview": Door("get", "/queues/", (p.VIEW,), 200),
    "counts": Door("get", "/queues/counts.json", (p.VIEW,), 200),
    "chart": Door("get", "/queues/chart.json", (p.VIEW,), 200),
    "live events": Door("get", "/queues/events", (p.VIEW,), 200),
    "listing": Door("get", "/queues/email/failed/", (p.VIEW,), 200),
    "job page": Door("get", "/queues/jobs/f1", (p.VIEW,), 200),
    "job status": Door("get", "/queues/jobs/f1/status.json", (p.VIEW,), 200),
    "retry": Door("post", "/queues/jobs/f1", (p.VIEW, p.OPERATE), 302, {"action": "retry"}),
    "promote": Door("post", "/queues/jobs/d1", (p.VIEW, p.OPERATE), 302, {"action": "promote"}),
    "cancel": Door("post", "/queues/jobs/w1", (p.VIEW, p.OPERATE), 302, {"action": "cancel"}),
    "priority": Door("post", "/queues/jobs/d1", (p.VIEW, p.OPERATE), 302,
                     {"action": "priority", "priority": "1"}),
    "remove": Door("post", "/queues/jobs/c1", (p.VIEW, p.REMOVE), 302, {"action": "remove"}),
    "pause": Door("post", "/queues/email/pause", (p.OPERATE,), 302),
    "resume": Door("post", "/queues/notifications/resume", (p.OPERATE,), 302),
    "retry-all confirm": Door("get", "/queues/email/retry-failed", (p.OPERATE,), 200),
    "retry-all": Door("post", "/queues/email/retry-failed", (p.OPERATE,), 302),
    "clean form": Door("get", "/queues/email/clean", (p.REMOVE,), 200),
    "clean": Door("post", "/queues/email/clean", (p.REMOVE,), 302,
                  {"state": "completed", "age": "0", "unit": "hours"}),
    "api enqueue": Door("post", "/api/jobs", (p.ENQUEUE,), 201,
                        json={"queue": "notifications", "name": "send-reminder",
                              "data": {"message": "api"}}),
    "api job": Door("get", "/api/jobs/f1", (p.VIEW,), 200),
    "metrics": Door("get", "/metrics", (p.VIEW,), 200),
}
#: Refused with 401 (a scraper's answer), not 403.
UNAUTHORIZED = {"metrics"}


@pytest.fixture
def rows(db):
    now = timezone.now()
    Job.objects.bulk_create([
        Job(id="f1", queue="email", name="send-welcome-email", state="failed",
            created_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=2)),
        Job(id="d1", queue="email", name="send-welcome-email", state="delayed",
            created_at=now, run_at=now + timedelta(hours=1)),
        Job(id="w1", queue="email", name="send-welcome-email", state="waiting",
            created_at=now, enqueued_at=now),
        Job(id="c1", queue="email", name="send-welcome-email", state="completed",
            created_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=2)),
    ])
    QueueControl.objects.create(queue="notifications", paused=True)


def snapshot() -> dict:
    return {"jobs": dict(Job.objects.values_list("id", "state")),
            "paused": sorted(QueueControl.objects.filter(paused=True)
                             .values_list("queue", flat=True))}


def knock(client, door: Door):
    if door.json is not None:
        return client.post(door.url, data=json.dumps(door.json), content_type="application/json")
    return getattr(client, door.method)(door.url, door.data or {})


@pytest.mark.parametrize("name", DOORS)
def test_staff_without_permissions_is_refused_and_nothing_changes(rows, client, name):
    door = DOORS[name]
    client.force_login(staff_user("staff-only"))
    before = snapshot()
    response = knock(client, door)
    assert response.status_code == (401 if name in UNAUTHORIZED else 403)
    assert snapshot() == before


@pytest.mark.parametrize("name", DOORS)
def test_every_other_permission_is_not_enough(rows, client, name):
    door = DOORS[name]
    missing = door.needs[-1]
    client.force_login(staff_user("almost", *[perm for perm in ALL if perm != missing]))
    before = snapshot()
    response = knock(client, door)
    assert response.status_code == (401 if name in UNAUTHORIZED else 403)
    assert snapshot() == before


@pytest.mark.parametrize("name", DOORS)
def test_the_needed_permission_opens_the_door(rows, client, name):
    door = DOORS[name]
    client.force_login(staff_user("allowed", *door.needs))
    before = snapshot()
    response = knock(client, door)
    assert response.status_code == door.ok, response.content[:300]
    changes = {"retry": ("f1", "waiting"), "promote": ("d1", "waiting"),
               "cancel": ("w1", "cancelled"), "remove": ("c1", None), "clean": ("c1", None),
               "retry-all": ("f1", "waiting")}
    if name in changes:
        job_id, state = changes[name]
        assert snapshot()["jobs"].get(job_id) == state
    elif name == "pause":
        assert "email" in snapshot()["paused"]
    elif name == "resume":
        assert snapshot()["paused"] == []
    elif name == "api enqueue":
        assert Job.objects.filter(pk=response.json()["id"], name="send-reminder").exists()
    else:
        assert snapshot() == before


def test_action_buttons_show_only_with_their_permission(rows, client):
    client.force_login(staff_user("viewer", p.VIEW))
    page = client.get("/queues/jobs/f1").content.decode()
    assert 'value="retry"' not in page and 'value="remove"' not in page
    assert "Pause" not in client.get("/queues/").content.decode()
    client.force_login(staff_user("operator", p.VIEW, p.OPERATE, p.REMOVE))
    page = client.get("/queues/jobs/f1").content.decode()
    assert 'value="retry"' in page and 'value="remove"' in page
    assert "Pause" in client.get("/queues/").content.decode()


@pytest.mark.parametrize("action, needs, changed", [
    ("retry_jobs", p.OPERATE, "waiting"),
    ("cancel_jobs", p.OPERATE, None),
    ("remove_jobs", p.REMOVE, "gone"),
])
def test_admin_actions_need_their_permission(rows, client, action, needs, changed):
    job_id = "w1" if action == "cancel_jobs" else "f1"
    changed = changed or "cancelled"
    post = {"action": action, "_selected_action": [job_id]}
    client.force_login(staff_user("staff-only"))
    assert client.post("/admin/tasks/job/", post).status_code == 403
    client.force_login(staff_user("viewer", p.VIEW, *[x for x in ALL if x not in (needs,)]))
    client.post("/admin/tasks/job/", post)
    assert Job.objects.filter(pk=job_id).exists()
    assert Job.objects.get(pk=job_id).state in ("failed", "waiting")  # unchanged
    client.force_login(staff_user("allowed", p.VIEW, needs))
    client.post("/admin/tasks/job/", post)
    job = Job.objects.filter(pk=job_id).first()
    assert (job.state if job else "gone") == changed


def test_admin_never_deletes_job_rows_directly(rows, client):
    """Deleting skips the state guard of "remove": not offered even to a superuser."""
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    response = client.post("/admin/tasks/job/", {"action": "delete_selected",
                                                 "_selected_action": ["c1"], "post": "yes"})
    assert response.status_code in (200, 302)
    assert Job.objects.filter(pk="c1").exists()
    assert client.get("/admin/tasks/job/c1/delete/").status_code == 403


def test_migrations_create_the_queue_operators_group(tmp_path):
    """On a fresh database, as ``manage.py migrate`` leaves it (not the flushed test one)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
        text=True, timeout=180)
    migrated = run("migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    shown = run("shell", "-c", (
        "from django.contrib.auth.models import Group;"
        f"g = Group.objects.get(name={p.OPERATORS_GROUP!r});"
        "print(sorted(f'{x.content_type.app_label}.{x.codename}' for x in g.permissions.all()))"))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == str(sorted([p.VIEW, p.OPERATE, p.REMOVE]))
