"""``manage.py queues``: tables of stats and jobs, and the operator actions."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from tasks.models import Job, JobLog
from tasks.queues import QueueName, add_job
from tasks.worker import presence
from tests.integration.helpers import wait_state


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("queues", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def rows(queue: str, state: str, n: int, prefix: str, age=timedelta(0), **fields) -> None:
    now = timezone.now()
    Job.objects.bulk_create([
        Job(id=f"{prefix}{i}", queue=queue, name="send-welcome-email", state=state,
            created_at=now - age, finished_at=now - age if state in ("completed", "failed")
            else None, **fields)
        for i in range(n)])


def test_stats_prints_a_table_of_every_queue(db):
    rows("email", "failed", 3, "f")
    rows("email", "waiting", 2, "w", enqueued_at=timezone.now() - timedelta(minutes=3))
    presence.pause_queue("analytics", by="test")
    out, _ = run("stats")
    lines = out.splitlines()
    assert lines[0].split() == ["queue", "waiting", "waiting-children", "delayed", "active",
                                "completed", "failed",
                                "cancelled", "completed/1h", "failed/1h", "status", "consumers",
                                "oldest", "waiting"]
    email = next(line for line in lines if line.startswith("email"))
    assert email.split()[:8] == ["email", "2", "0", "0", "0", "0", "3", "0"]
    assert "running" in email and "3m" in email
    assert "paused" in next(line for line in lines if line.startswith("analytics"))


def test_list_shows_jobs_with_their_last_error(db):
    rows("email", "failed", 2, "bad", errors=[{"attempt": 1, "error": "SMTPException: down"}])
    out, _ = run("list", "email", "--state", "failed")
    assert "bad0" in out and "bad1" in out and "SMTPException: down" in out
    with pytest.raises(CommandError, match="queue 'emial' is not one of"):
        run("list", "emial")


def test_pause_and_resume(db):
    out, _ = run("pause", "email")
    assert "email paused" in out and presence.paused_queues() == {"email"}
    run("resume", "email")
    assert presence.paused_queues() == set()


def test_clean_deletes_in_batches_with_a_progress_bar(db, monkeypatch):
    from tasks.upkeep import retention

    monkeypatch.setattr(retention, "DELETE_BATCH", 4)
    rows("email", "completed", 10, "old", age=timedelta(days=2))
    rows("email", "completed", 2, "new")
    out, err = run("clean", "email", "--state", "completed", "--older-than", "1d", "--progress")
    assert out.splitlines()[-1].split() == ["email", "completed", "1d", "10"]
    assert "cleaning email [" in err and "10/10" in err
    assert Job.objects.count() == 2
    with pytest.raises(CommandError, match="must look like"):
        run("clean", "email", "--older-than", "yesterday")


def test_retry_failed_runs_the_jobs_again(service):
    ids = [add_job(QueueName.DATA_PROCESSING, "fails-first-runs", {"key": f"cli{i}"},
                   attempts=1) for i in range(2)]
    for job_id in ids:
        wait_state(job_id, "failed")
    out, err = run("retry-failed", "data-processing", "--progress")
    assert out.splitlines()[-1].split() == ["data-processing", "2", "2"]
    assert "2/2" in err
    for job_id in ids:
        wait_state(job_id, "completed")
        log = JobLog.objects.filter(job_id=job_id).values_list("message", flat=True)
        assert any(m.startswith("retried by ") and "(manage.py queues)" in m for m in log)
