"""The worker's database connection between jobs: reused, not health-checked, recovered."""

from __future__ import annotations

import uuid

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from tasks.models import Job
from tasks.worker import lifecycle
from tasks.worker.bootstep import _fresh_connections


def _waiting_job() -> str:
    job_id = str(uuid.uuid4())
    Job.objects.create(id=job_id, queue="analytics", name="noop", data={}, created_at=timezone.now())
    return job_id


def _drop_server_side(monkeypatch) -> None:
    """The server closes the connection while the worker is idle."""
    if connection.vendor == "postgresql":
        import psycopg

        settings = connection.settings_dict
        pid = connection.connection.info.backend_pid
        with psycopg.connect(
            host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
            user=settings["USER"], password=settings["PASSWORD"], dbname=settings["NAME"],
            autocommit=True,
        ) as admin:  # fmt: skip
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        return
    # SQLite has no server to drop it: the next statement fails as PostgreSQL's would.
    real = lifecycle._fetchone
    calls = []

    def fails_once(sql, params):
        calls.append(sql)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(sql, params)

    monkeypatch.setattr(lifecycle, "_fetchone", fails_once)
    monkeypatch.setattr(connection, "is_usable", lambda: False)


def test_no_health_check_round_trip_before_a_job(transactional_db, monkeypatch):
    lifecycle.claim(_waiting_job(), "w@host")  # the connection is open, as after a job
    job_id = _waiting_job()
    checks = []
    real_is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real_is_usable())

    _fresh_connections()
    won = lifecycle.claim(job_id, "w@host")

    assert won is not None
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] and checks == []


def test_claim_reconnects_once_when_the_server_dropped_the_connection(
    transactional_db, monkeypatch
):
    job_id = _waiting_job()
    lifecycle.claim(_waiting_job(), "w@host")
    _drop_server_side(monkeypatch)

    _fresh_connections()
    won = lifecycle.claim(job_id, "w@host")

    assert won is not None and won.attempts_made == 1
    assert Job.objects.get(pk=job_id).state == "active"


def test_an_errored_connection_is_still_replaced_before_the_next_job(transactional_db):
    lifecycle.claim(_waiting_job(), "w@host")
    old = connection.connection
    connection.errors_occurred = True
    connection.is_usable = lambda: False
    try:
        _fresh_connections()
    finally:
        del connection.is_usable

    assert connection.connection is None or connection.connection is not old
    assert lifecycle.claim(_waiting_job(), "w@host") is not None


@pytest.mark.parametrize("result", [None, {"rows": 3}, [1, "two"]])
def test_complete_stores_the_result_once(transactional_db, result):
    job_id = _waiting_job()
    run = lifecycle.claim(job_id, "w@host")

    assert lifecycle.complete(job_id, result, run=run) is True
    assert lifecycle.complete(job_id, {"again": True}, run=run) is False

    job = Job.objects.get(pk=job_id)
    assert (job.state, job.result) == ("completed", result)
    assert job.finished_at is not None
