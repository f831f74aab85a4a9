"""``GET /queues/health``: 200 with the real service, 503 with no worker or no broker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from intelgraph.celery import app as celery_app
from tasks.operate import health
from tests.integration.helpers import worker_stopped
from tests.processes import wait_for

QUEUES = {"email", "notifications", "data-processing", "analytics"}


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
    response = client.get("/queues/health")
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
        response = client.get("/queues/health")
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
        response = client.get("/queues/health")
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

    response = client.get("/queues/health")
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
