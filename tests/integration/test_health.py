"""``GET /queues/health``: 200 with the real service, 503 with no worker or no broker.

Details need the metrics token or ``view_job``; anyone else sees the status and
the queue names. Reports are cached for ``health.CACHE_S``: tests that change
the service clear the cache before asking again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.cache import cache

from intelgraph.celery import app as celery_app
from tasks.jobs import permissions
from tasks.operate import health
from tests.integration.helpers import staff_user, worker_stopped
from tests.processes import wait_for

QUEUES_IN_ORDER = ("email", "notifications", "data-processing", "analytics")
QUEUES = set(QUEUES_IN_ORDER)
TOKEN = "health-test-token-0123456789"
BEARER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _token_and_fresh_cache(settings):
    settings.METRICS_TOKEN = TOKEN
    cache.clear()
    yield
    cache.clear()


@contextmanager
def black_hole() -> Iterator[str]:
    """A port whose kernel accepts connections that nobody ever answers: a hung broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/1"
    finally:
        server.close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/1"


def _healthy(client) -> dict | None:
    cache.clear()  # each try is a fresh report
    response = client.get("/queues/health", **BEARER)
    return response.json() if response.status_code == 200 else None


def test_healthy_service_answers_200(service, client):
    # Right after the database is reset, wait for the first heartbeat and promoter tick.
    body = wait_for(lambda: _healthy(client), 15, message="a 200 from /queues/health")
    assert body["status"] == "ok" and body["problems"] == [] and body["warnings"] == []
    assert body["missing_workers"] == []
    assert body["broker"]["reachable"] and body["database"]["reachable"]
    assert set(body["queues"]) == QUEUES
    for queue in body["queues"].values():
        assert any(host.startswith("shared@") for host in queue["consumers"])
        assert queue["oldest_waiting_age_s"] is None
    assert body["promoter"]["last_tick_age_s"] < health.PROMOTER_STALE_AFTER_S
    assert "job" not in str(body).lower()  # no job data


def test_no_worker_answers_503_naming_each_queue(service, client):
    wait_for(lambda: _healthy(client), 15, message="a healthy start")
    with worker_stopped(service["worker"]):
        cache.clear()
        response = client.get("/queues/health", **BEARER)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "fail"
        assert {f"no worker consumes queue {q}" for q in QUEUES} <= set(body["problems"])
        assert body["broker"]["reachable"] is True


@pytest.mark.parametrize("dead", ["hung", "refused"])
def test_broker_down_answers_503_within_a_second(service, client, monkeypatch, dead):
    with black_hole() as hung:
        url = hung if dead == "hung" else _closed_port()
        monkeypatch.setitem(celery_app.conf, "broker_url", url)
        started = time.monotonic()
        response = client.get("/queues/health", **BEARER)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 1.0, f"health took {elapsed:.2f}s with a {dead} broker"
    body = response.json()
    assert body["broker"]["reachable"] is False
    assert any(p.startswith("broker unreachable") for p in body["problems"])
    assert body["database"]["reachable"] is True


def test_a_worker_that_vanished_is_a_warning_until_forgotten(service, client, settings):
    """A stale heartbeat (killed or cut-off host) degrades health; others still consume."""
    from datetime import timedelta

    from django.utils import timezone

    from tasks.models import WorkerHeartbeat
    from tasks.upkeep.retention import enforce_retention

    wait_for(lambda: _healthy(client), 15, message="a healthy start")
    now = timezone.now()
    silent = now - timedelta(seconds=settings.JOB_WORKER_GONE_AFTER_S + 20)
    WorkerHeartbeat.objects.create(hostname="lost@host-b", queues=["data-processing"],
                                   started_at=silent, last_seen=silent)
    long_ago = now - timedelta(seconds=settings.JOB_WORKER_FORGET_AFTER_S + 60)
    WorkerHeartbeat.objects.create(hostname="retired@host-c", queues=["email"],
                                   started_at=long_ago, last_seen=long_ago)

    cache.clear()
    response = client.get("/queues/health", **BEARER)
    assert response.status_code == 200  # jobs still flow: the shared worker consumes every queue
    body = response.json()
    assert body["status"] == "degraded" and body["problems"] == []
    assert [w["hostname"] for w in body["missing_workers"]] == ["lost@host-b"]
    assert body["missing_workers"][0]["last_seen_age_s"] >= 20
    assert body["queues"]["data-processing"]["missing_consumers"] == ["lost@host-b"]
    assert body["queues"]["email"]["missing_consumers"] == []
    assert any("lost@host-b stopped sending heartbeats" in w for w in body["warnings"])

    # The dashboard and /metrics show the same.
    from prometheus_client.parser import text_string_to_metric_families

    from tasks.jobs import permissions
    from tests.integration.helpers import staff_user

    client.force_login(staff_user("ops", permissions.VIEW))
    overview = {q["name"]: q for q in client.get("/queues/counts.json").json()["queues"]}
    assert overview["data-processing"]["missing_consumers"] == ["lost@host-b"]
    assert overview["email"]["missing_consumers"] == []
    assert "missing: lost@host-b" in client.get("/queues/").content.decode()
    gauges = {s.labels["queue"]: s.value for f in text_string_to_metric_families(
        client.get("/metrics").content.decode()) for s in f.samples
        if s.name == "intelgraph_queue_missing_consumers"}
    assert gauges == {"email": 0, "notifications": 0, "data-processing": 1, "analytics": 0}

    enforce_retention()
    assert not WorkerHeartbeat.objects.filter(hostname="retired@host-c").exists()
    assert WorkerHeartbeat.objects.filter(hostname="lost@host-b").exists()


def test_anonymous_callers_see_the_status_and_queue_names_only(service, client):
    wait_for(lambda: _healthy(client), 15, message="a healthy start")
    response = client.get("/queues/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "queues": list(QUEUES_IN_ORDER)}
    client.force_login(staff_user("staff-only"))
    assert set(client.get("/queues/health").json()) == {"status", "queues"}
    client.force_login(staff_user("viewer", permissions.VIEW))
    details = client.get("/queues/health").json()
    assert details["broker"]["reachable"] and "shared@" in str(details["queues"])


def test_a_failing_service_tells_anonymous_callers_no_addresses_or_errors(service, client,
                                                                          monkeypatch):
    url = _closed_port()
    monkeypatch.setitem(celery_app.conf, "broker_url", url)
    response = client.get("/queues/health")
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "queues": list(QUEUES_IN_ORDER)}
    detailed = client.get("/queues/health", **BEARER)  # the same cached report, in full
    assert detailed.status_code == 503
    assert any(p.startswith("broker unreachable") for p in detailed.json()["problems"])


def test_repeated_requests_share_one_report_and_one_broker_probe(service, client, monkeypatch):
    probes = []
    real_probe = health.broker_status

    def counted(*args, **kwargs):
        probes.append(time.monotonic())
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(health, "broker_status", counted)
    started = time.monotonic()
    statuses = [client.get("/queues/health").status_code for _ in range(20)]
    elapsed = time.monotonic() - started
    assert len(set(statuses)) == 1
    # 20 requests within the cache period: one probe (two if the period ran out midway).
    assert len(probes) <= (1 if elapsed < health.CACHE_S else 2), (len(probes), elapsed)
    time.sleep(health.CACHE_S + 0.1)
    client.get("/queues/health")
    assert len(probes) >= 2  # a stale report is not served for ever
    assert health.CACHE_S <= 2.0


def test_a_non_ascii_bearer_token_is_refused_not_a_crash(db, client):
    assert client.get("/queues/health", HTTP_AUTHORIZATION="Bearer \u00e9t\u00e9").status_code \
        in (200, 503)
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer \u00e9t\u00e9").status_code == 401
