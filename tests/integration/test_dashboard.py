"""The queue dashboard's pages: access, counts, listings, the job page and its diagnosis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from tasks.jobs import permissions
from tasks.models import Job
from tasks.operate import counts
from tasks.operate.dashboard import diagnosis
from tasks.queues import QueueName, add_job
from tasks.worker import presence
from tests.integration.helpers import staff_user, wait_state
from tests.processes import wait_for


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # cached counts and chart series must not leak between tests
    yield
    cache.clear()


@pytest.fixture
def staff_client(client):
    client.force_login(staff_user("ops", permissions.VIEW, permissions.OPERATE, permissions.REMOVE))
    return client


def make_jobs(queue: str, state: str, n: int, prefix: str, start=None, name: str = "record",
              **fields) -> list[Job]:
    """``n`` job rows one second apart (ids ``<prefix>0000``…), written straight to the table."""
    start = start or timezone.now() - timedelta(hours=1)
    return Job.objects.bulk_create([
        Job(id=f"{prefix}{i:04d}", queue=queue, name=name, state=state,
            created_at=start + timedelta(seconds=i), **fields)
        for i in range(n)
    ])


def test_pages_need_a_login_and_the_view_permission_but_health_does_not(db, client, settings):
    for url in ("/queues/", "/queues/counts.json", "/queues/email/failed/", "/queues/jobs/x"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{settings.LOGIN_URL}?next={url}", url
    client.force_login(User.objects.create_user("plain", "p@example.com", "pw-12345678"))
    assert client.get("/queues/").status_code == 403
    client.force_login(staff_user("staff-only"))
    assert client.get("/queues/").status_code == 403
    assert client.get("/queues/health").status_code in (200, 503)  # no login asked


def test_overview_counts_every_state_of_every_queue(db, staff_client):
    make_jobs("email", "failed", 3, "f")
    make_jobs("email", "waiting", 2, "w", enqueued_at=timezone.now() - timedelta(minutes=5))
    make_jobs("analytics", "completed", 4, "c", finished_at=timezone.now())
    page = staff_client.get("/queues/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-count="email:failed" href="/queues/email/failed/"' in html
    data = staff_client.get("/queues/counts.json").json()
    by_queue = {q["name"]: q for q in data["queues"]}
    assert set(by_queue) == {"email", "notifications", "data-processing", "analytics"}
    assert by_queue["email"]["counts"]["failed"] == {"value": 3, "exact": True, "text": "3"}
    assert by_queue["email"]["counts"]["waiting"]["value"] == 2
    assert by_queue["analytics"]["counts"]["completed"]["value"] == 4
    assert by_queue["notifications"]["counts"]["active"]["value"] == 0
    assert 299 <= by_queue["email"]["oldest_waiting_age_s"] < 330
    assert by_queue["email"]["paused"] is False


def test_counts_above_the_cap_are_cached_estimates(db, staff_client, monkeypatch):
    monkeypatch.setattr(counts, "COUNT_CAP", 5)
    make_jobs("email", "failed", 8, "f")
    assert str(counts.state_count("email", "failed")) == "≈8"
    make_jobs("email", "failed", 2, "g")
    assert counts.state_count("email", "failed").value == 8  # reused, not recounted
    cache.clear()
    assert counts.state_count("email", "failed").value == 10
    make_jobs("email", "waiting", 4, "w")
    assert counts.state_count("email", "waiting") == counts.StateCount(4, exact=True)


def test_oldest_waiting_counts_from_when_a_job_became_waiting(db):
    now = timezone.now()
    Job.objects.bulk_create([
        # Created long ago but delayed: waiting only since a minute ago.
        Job(id="promoted", queue="email", name="record", state="waiting",
            created_at=now - timedelta(minutes=20), enqueued_at=now - timedelta(minutes=1)),
        Job(id="plain", queue="email", name="record", state="waiting",
            created_at=now - timedelta(minutes=5), enqueued_at=now - timedelta(minutes=5)),
        Job(id="retried", queue="email", name="record", state="waiting",
            created_at=now - timedelta(minutes=30), enqueued_at=now - timedelta(minutes=7)),
        Job(id="done", queue="email", name="record", state="completed",
            created_at=now - timedelta(hours=2), enqueued_at=now - timedelta(hours=2)),
    ])
    assert counts.oldest_waiting("email") == now - timedelta(minutes=7)
    assert counts.oldest_waiting("analytics") is None


def test_chart_series_per_minute(db, staff_client):
    now = timezone.now()
    make_jobs("email", "completed", 3, "c", finished_at=now - timedelta(minutes=2))
    make_jobs("email", "failed", 1, "f", finished_at=now - timedelta(minutes=2))
    make_jobs("email", "completed", 5, "old", finished_at=now - timedelta(hours=3))
    hour = staff_client.get("/queues/chart.json?window=1h").json()
    assert len(hour["minutes"]) == 60 and sum(hour["completed"]) == 3
    assert sum(hour["failed"]) == 1
    assert hour["completed"][-3] == 3  # two minutes before the current minute
    day = staff_client.get("/queues/chart.json?window=24h&queue=email").json()
    assert len(day["minutes"]) == 1440 and sum(day["completed"]) == 8
    week = staff_client.get("/queues/chart.json?window=7d&name=record").json()
    assert len(week["minutes"]) == 168 and sum(week["completed"]) == 8
    assert len(staff_client.get("/queues/chart.json?window=90d").json()["minutes"]) == 90
    assert staff_client.get("/queues/chart.json?window=2y").status_code == 400


def test_listing_is_newest_first_with_keyset_pages(db, staff_client):
    make_jobs("data-processing", "failed", 120, "j")
    first = staff_client.get("/queues/data-processing/failed/")
    ids = [j.pk for j in first.context["page"].jobs]
    assert ids[:2] == ["j0119", "j0118"] and len(ids) == 50
    older = first.context["page"].older
    second = staff_client.get("/queues/data-processing/failed/", {"before": older})
    assert [j.pk for j in second.context["page"].jobs][0] == "j0069"
    third = staff_client.get("/queues/data-processing/failed/",
                             {"before": second.context["page"].older})
    assert [j.pk for j in third.context["page"].jobs][-1] == "j0000"
    assert third.context["page"].older is None
    back = staff_client.get("/queues/data-processing/failed/",
                            {"after": third.context["page"].newer})
    assert [j.pk for j in back.context["page"].jobs] == [j.pk for j in second.context["page"].jobs]


def test_listing_filters_by_name_priority_dates_and_search(db, staff_client):
    start = timezone.now() - timedelta(days=2)
    make_jobs("data-processing", "waiting", 5, "rec", start=start, name="record", priority=1)
    make_jobs("data-processing", "waiting", 5, "flk", start=start + timedelta(days=1),
              name="flaky", priority=3, data={"customer": "acme-42"})
    url = "/queues/data-processing/waiting/"

    def listed(**params):
        return sorted(j.pk for j in staff_client.get(url, params).context["page"].jobs)

    assert listed(name="flaky") == [f"flk{i:04d}" for i in range(5)]
    assert listed(priority=1) == [f"rec{i:04d}" for i in range(5)]
    day_two = (start + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
    assert listed(created_to=day_two) == [f"rec{i:04d}" for i in range(5)]
    assert listed(created_from=day_two) == [f"flk{i:04d}" for i in range(5)]
    assert listed(q="acme-42") == [f"flk{i:04d}" for i in range(5)]
    assert listed(q="rec0003") == ["rec0003"]
    assert listed(name="flaky", priority=1) == []
    assert staff_client.get("/queues/nope/").status_code == 404
    assert staff_client.get("/queues/email/sleeping/").status_code == 404


def test_active_jobs_show_progress_bars(db, staff_client):
    make_jobs("data-processing", "active", 1, "a", progress=40, worker="w1@host",
              started_at=timezone.now())
    html = staff_client.get("/queues/data-processing/active/").content.decode()
    assert '<progress max="100" value="40.0">' in html and "w1@host" in html


def test_job_page_shows_data_history_errors_result_and_logs(service, staff_client):
    job_id = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": "page", "fail_times": 1},
                     backoff={"type": "fixed", "delay": 100})
    wait_state(job_id, "completed")
    page = staff_client.get(f"/queues/jobs/{job_id}")
    html = page.content.decode()
    assert page.status_code == 200
    assert "&quot;key&quot;: &quot;page&quot;" in html  # data, as JSON
    assert "attempt 1 failed: TransientJobError: transient failure on attempt 1" in html
    assert "Traceback (most recent call last)" in html
    assert '<pre class="json" id="job-result">&quot;ok&quot;</pre>' in html  # result
    assert "attempt 2 started on shared@" in html  # history names the worker
    assert f"http://127.0.0.1:5555/task/{job_id}" in html  # Flower link
    states = [e.state for e in page.context["events"]]
    assert states[0] == "created" and states[-1] == "completed"
    assert "failed attempt" in states
    starts = [e.text for e in page.context["events"] if e.text.startswith("attempt ")
              and "started" in e.text]
    assert len(starts) == 2 and starts[1].startswith("attempt 2 started on shared@")
    status = staff_client.get(f"/queues/jobs/{job_id}/status.json").json()
    assert status == {"id": job_id, "state": "completed", "progress": 0, "attempts_made": 2}
    assert staff_client.get("/queues/jobs/missing").status_code == 404


def test_why_a_delayed_job_is_not_running(service, staff_client):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "later"}, delay=timedelta(hours=1))
    html = staff_client.get(f"/queues/jobs/{job_id}").content.decode()
    assert "Why is this job not running?" in html
    assert "Delayed until" in html and "(in 59\xa0minutes)" in html


def test_why_a_waiting_job_is_not_running(db):
    now = timezone.now()
    make_jobs("email", "waiting", 3, "hi", priority=1, enqueued_at=now - timedelta(minutes=1))
    make_jobs("email", "waiting", 2, "same", priority=3, enqueued_at=now - timedelta(minutes=1))
    (job,) = make_jobs("email", "waiting", 1, "me", priority=3, enqueued_at=now)
    nobody = diagnosis.QueueSituation(paused=False, consumers=[], busy=False)
    found = diagnosis.reasons(job, nobody, now)
    assert "No worker consumes queue email: start one with -Q email." in found
    assert "3 job(s) of higher priority ahead." in found
    assert "2 job(s) of the same priority queued earlier." in found
    assert "Not yet sent to the broker: the promoter's relay will publish it." in found
    busy = diagnosis.QueueSituation(paused=False, consumers=["w1@h"], busy=True)
    assert "All consumers of email are busy (w1@h)." in diagnosis.reasons(job, busy, now)
    paused = diagnosis.QueueSituation(paused=True, consumers=[], busy=False)
    assert diagnosis.reasons(job, paused, now)[0].startswith("Queue email is paused")
    (done,) = make_jobs("email", "completed", 1, "done")
    assert diagnosis.reasons(done, nobody, now) == []


def test_why_reads_pauses_and_live_consumers(service, staff_client):
    presence.pause_queue("analytics", by="ops")
    try:
        # Workers apply pauses on their next heartbeat; then no one consumes it.
        wait_for(lambda: presence.workers() and not presence.consumers()["analytics"], 10,
                 message="the shared worker to apply the pause")
        job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "held"})
        html = staff_client.get(f"/queues/jobs/{job_id}").content.decode()
        assert "Queue analytics is paused" in html
        assert Job.objects.get(pk=job_id).state == "waiting"
    finally:
        presence.resume_queue("analytics", by="ops")
    wait_state(job_id, "completed")
    situation = diagnosis.QueueSituation.of("analytics")
    assert any(host.startswith("shared@") for host in situation.consumers)
