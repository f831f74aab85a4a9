"""Dashboard actions: CSRF-protected POSTs against the real worker, each recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from tasks.jobs import permissions
from tasks.models import Job, JobLog
from tasks.queues import QueueName, add_job
from tasks.worker import presence
from tests.integration.helpers import staff_user, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ops():
    return staff_user("ops", permissions.VIEW, permissions.OPERATE, permissions.REMOVE)


@pytest.fixture
def csrf_client(ops):
    """A browser-like client: CSRF enforced, token taken from the page like a form would."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops)
    return client


def post(client: Client, url: str, data: dict | None = None, page: str = "/queues/"):
    client.get(page)  # sets the csrftoken cookie, as rendering a form does
    token = client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})


def logs(job_id: str) -> list[str]:
    return list(JobLog.objects.filter(job_id=job_id).values_list("message", flat=True))


def test_actions_refuse_posts_without_a_csrf_token(db, csrf_client):
    Job.objects.create(id="f1", queue="email", name="send-welcome-email", state="failed",
                       created_at=timezone.now())
    assert csrf_client.post("/queues/jobs/f1", {"action": "retry"}).status_code == 403
    assert csrf_client.post("/queues/email/pause").status_code == 403
    assert Job.objects.get(pk="f1").state == "failed"
    assert csrf_client.get("/queues/email/pause").status_code == 405  # never on GET


def test_retry_a_failed_job_from_its_page(service, csrf_client):
    job_id = add_job(QueueName.DATA_PROCESSING, "fails-first-runs", {"key": "dash"}, attempts=1)
    wait_state(job_id, "failed")
    response = post(csrf_client, f"/queues/jobs/{job_id}", {"action": "retry"})
    assert response.status_code == 302 and response["Location"] == f"/queues/jobs/{job_id}"
    done = wait_state(job_id, "completed")
    assert len(done.errors) == 1  # the earlier failure stays on record
    assert "retried by ops" in logs(job_id)
    again = post(csrf_client, f"/queues/jobs/{job_id}", {"action": "retry"})
    assert again.status_code == 302
    page = csrf_client.get(f"/queues/jobs/{job_id}")
    assert f"cannot retry job &#x27;{job_id}&#x27;: it is completed" in page.content.decode()


def test_retry_all_failed_confirms_the_count_first(service, csrf_client):
    ids = [add_job(QueueName.DATA_PROCESSING, "fails-first-runs", {"key": f"all{i}"},
                   attempts=1) for i in range(3)]
    for job_id in ids:
        wait_state(job_id, "failed")
    confirm = csrf_client.get("/queues/data-processing/retry-failed")
    assert confirm.status_code == 200
    assert "This moves <strong>3</strong> failed job(s)" in confirm.content.decode()
    assert all(Job.objects.get(pk=i).state == "failed" for i in ids)  # GET changes nothing
    response = post(csrf_client, "/queues/data-processing/retry-failed")
    assert response.status_code == 302
    for job_id in ids:
        wait_state(job_id, "completed")
        assert "retried by ops (retry all failed)" in logs(job_id)


def test_promote_a_delayed_job(service, csrf_client):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "promote-me"}, delay=timedelta(hours=1))
    post(csrf_client, f"/queues/jobs/{job_id}", {"action": "promote"})
    wait_state(job_id, "completed")
    assert "promoted by ops" in logs(job_id)
    assert Execution.objects.filter(key="promote-me").count() == 1


def test_cancel_waiting_delayed_and_active_jobs(service, csrf_client):
    delayed = add_job(QueueName.DATA_PROCESSING, "record", {"key": "never"}, delay=timedelta(hours=1))
    post(csrf_client, f"/queues/jobs/{delayed}", {"action": "cancel"})
    assert Job.objects.get(pk=delayed).state == "cancelled"
    assert "cancelled by ops" in logs(delayed)

    running = add_job(QueueName.DATA_PROCESSING, "record", {"key": "slow", "sleep": 1.5})
    wait_state(running, "active")
    post(csrf_client, f"/queues/jobs/{running}", {"action": "cancel"})
    job = Job.objects.get(pk=running)
    assert job.cancel_requested is True  # the processor's job.is_cancelled() is now true
    assert "cancellation requested by ops" in logs(running)
    wait_for(lambda: Job.objects.get(pk=running).state != "active", 30, message="slow job end")


def test_remove_a_job_and_its_log(service, csrf_client):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "gone"}, delay=timedelta(hours=1))
    post(csrf_client, f"/queues/jobs/{job_id}", {"action": "cancel"})
    response = post(csrf_client, f"/queues/jobs/{job_id}", {"action": "remove"})
    assert response.status_code == 302
    assert response["Location"] == "/queues/data-processing/cancelled/"
    assert not Job.objects.filter(pk=job_id).exists()
    assert not JobLog.objects.filter(job_id=job_id).exists()


def test_clean_a_queue_by_state_and_age(db, csrf_client):
    now = timezone.now()
    Job.objects.bulk_create(
        [Job(id=f"old{i}", queue="email", name="send-welcome-email", state="completed",
             created_at=now - timedelta(days=3), finished_at=now - timedelta(days=2))
         for i in range(4)]
        + [Job(id="new", queue="email", name="send-welcome-email", state="completed",
               created_at=now, finished_at=now),
           Job(id="oldfail", queue="email", name="send-welcome-email", state="failed",
               created_at=now - timedelta(days=3), finished_at=now - timedelta(days=2))])
    form = csrf_client.get("/queues/email/clean?state=completed")
    assert form.status_code == 200
    response = post(csrf_client, "/queues/email/clean",
                    {"state": "completed", "age": "1", "unit": "days"})
    assert response.status_code == 302
    assert set(Job.objects.values_list("id", flat=True)) == {"new", "oldfail"}
    bad = post(csrf_client, "/queues/email/clean", {"state": "active", "age": "1", "unit": "days"})
    assert bad.status_code == 400
    huge = post(csrf_client, "/queues/email/clean",
                {"state": "completed", "age": str(10**12), "unit": "days"})
    assert huge.status_code == 400 and "at most 3650 days" in huge.content.decode()


def test_pause_and_resume_a_queue(service, csrf_client):
    response = post(csrf_client, "/queues/analytics/pause", {"next": "/queues/analytics/"})
    assert response.status_code == 302 and response["Location"] == "/queues/analytics/"
    assert presence.paused_queues() == {"analytics"}
    wait_for(lambda: presence.workers() and not presence.consumers()["analytics"], 10,
             message="the worker to apply the pause")
    job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "held"})
    counts = csrf_client.get("/queues/counts.json").json()
    analytics = next(q for q in counts["queues"] if q["name"] == "analytics")
    assert analytics["paused"] is True and analytics["consumers"] == []
    assert Job.objects.get(pk=job_id).state == "waiting"
    post(csrf_client, "/queues/analytics/resume", {"next": "https://elsewhere.example/"})
    assert presence.paused_queues() == set()
    wait_state(job_id, "completed")
