"""``GET /queues/health``: 200 with the real service, 503 with no worker or no broker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from intelgraph.celery import app as celery_app
from tasks import health
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
    assert body["status"] == "ok" and body["problems"] == []
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
