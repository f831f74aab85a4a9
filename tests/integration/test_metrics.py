"""``GET /metrics``: Prometheus text for staff or the token, from the job records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tasks.jobs import permissions
from tasks.models import Job
from tasks.queues import QueueName, add_job
from tasks.worker import presence
from tests.integration.helpers import staff_user, wait_state
from tests.processes import wait_for


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _rows(now) -> None:
    jobs = [Job(id=f"done{i}", queue="email", name="send-welcome-email", state="completed",
                attempts_made=1, created_at=now - timedelta(minutes=5),
                started_at=now - timedelta(minutes=1, seconds=0.2 + i),
                finished_at=now - timedelta(minutes=1)) for i in range(3)]
    jobs += [Job(id=f"fail{i}", queue="email", name="send-welcome-email", state="failed",
                 attempts_made=3, created_at=now - timedelta(minutes=5),
                 started_at=now - timedelta(minutes=2), finished_at=now - timedelta(minutes=2,
                 seconds=-45)) for i in range(2)]
    jobs += [Job(id=f"wait{i}", queue="analytics", name="hourly-stats", state="waiting",
                 created_at=now - timedelta(minutes=10), enqueued_at=now - timedelta(minutes=10))
             for i in range(4)]
    jobs.append(Job(id="stale", queue="email", name="send-welcome-email", state="completed",
                    attempts_made=1, created_at=now - timedelta(hours=3),
                    started_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=2)))
    Job.objects.bulk_create(jobs)


@override_settings(METRICS_TOKEN="s3cret-token")
def test_metrics_need_the_view_permission_or_the_token(db, client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain; version=")
    client.force_login(User.objects.create_user("plain", "p@example.com", "pw-12345678"))
    assert client.get("/metrics").status_code == 401
    client.force_login(staff_user("staff-only"))
    assert client.get("/metrics").status_code == 401
    client.force_login(staff_user("ops", permissions.VIEW))
    assert client.get("/metrics").status_code == 200


def test_no_token_configured_means_sessions_only(db, client):
    with override_settings(METRICS_TOKEN=""):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@override_settings(METRICS_TOKEN="s3cret-token")
def test_metrics_report_states_depth_age_durations_failures_retries(db, client):
    _rows(timezone.now())
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").content.decode()
    got = samples(text)
    email, analytics = (("queue", "email"),), (("queue", "analytics"),)
    assert got[("intelgraph_jobs", (("queue", "email"), ("state", "completed")))] == 4
    assert got[("intelgraph_jobs", (("queue", "email"), ("state", "failed")))] == 2
    assert got[("intelgraph_jobs", (("queue", "notifications"), ("state", "active")))] == 0
    assert got[("intelgraph_queue_depth", analytics)] == 4
    assert got[("intelgraph_queue_depth", email)] == 0
    assert 590 < got[("intelgraph_queue_oldest_waiting_age_seconds", analytics)] < 660
    labels = (("name", "send-welcome-email"), ("queue", "email"))
    # 3 completed in 0.2 s, 1.2 s, 2.2 s, 2 failed in 45 s, and one an hour long: all time.
    assert got[("intelgraph_job_duration_seconds_count", labels)] == 6
    assert got[("intelgraph_job_duration_seconds_bucket", (("le", "0.25"), *labels))] == 1
    assert got[("intelgraph_job_duration_seconds_bucket", (("le", "2.5"), *labels))] == 3
    assert got[("intelgraph_job_duration_seconds_bucket", (("le", "60.0"), *labels))] == 5
    assert got[("intelgraph_job_duration_seconds_bucket", (("le", "+Inf"), *labels))] == 6
    assert got[("intelgraph_job_duration_seconds_sum", labels)] == pytest.approx(3693.6, abs=0.1)
    outcome = (("name", "send-welcome-email"), ("outcome", "failed"), ("queue", "email"))
    assert got[("intelgraph_jobs_finished_total", outcome)] == 2
    assert got[("intelgraph_job_retries_total", labels)] == 4  # two failed jobs, 2 retries each


def test_metrics_follow_a_real_job(service, client):
    client.force_login(staff_user("ops", permissions.VIEW))
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "m", "fail_times": 1},
                     backoff={"type": "fixed", "delay": 100})
    wait_state(job_id, "completed")
    wait_for(lambda: presence.consumers()["data-processing"], 10, message="a heartbeat")
    got = samples(client.get("/metrics").content.decode())
    labels = (("name", "flaky"), ("queue", "data-processing"))
    assert got[("intelgraph_job_duration_seconds_count", labels)] == 1
    assert got[("intelgraph_job_retries_total", labels)] == 1
    assert got[("intelgraph_queue_consumers", (("queue", "data-processing"),))] >= 1
