"""Bounded operations (issue 13, item 7): deletes by primary key in batches, big ones as jobs.

Before: ``QuerySet.delete()`` loaded every job as a model instance to cascade
to its log lines (300,000 rows: 26.5 s, 750 MB), and retry-all ran in the
request. The time and RSS figures are bench/retention.py's; here, what the
code does: which statements, how many batches, what is kept, what memory a
clean allocates, and the background job with its progress.
"""

from __future__ import annotations

import math
import tracemalloc
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.jobs.errors import JobCancelled
from tasks.jobs.ids import new_job_id
from tasks.models import Job, JobLog
from tasks.operate import actions, bulk
from tasks.queues import QueueName
from tasks.upkeep import retention
from tasks.worker.job import JobContext
from tests.integration.helpers import wait_state

BIG = {"to": "someone@example.com", "subject": "s", "body": "x" * 2000}


def _jobs(n: int, state: str, age: timedelta, queue: str = "email", logs: int = 0,
          name: str = "send-welcome-email", data: dict | None = None) -> list[str]:
    now = timezone.now()
    when = now - age
    finished = state in ("completed", "failed")
    rows = [Job(id=new_job_id(), queue=queue, name=name, data=data or BIG, state=state,
                created_at=when, finished_at=when - timedelta(seconds=i) if finished else None,
                errors=[{"error": "E", "traceback": "t" * 1000}] if state == "failed" else [])
            for i in range(n)]
    Job.objects.bulk_create(rows, batch_size=2000)
    if logs:
        JobLog.objects.bulk_create([JobLog(job_id=row.id, message=f"line {k}")
                                    for row in rows for k in range(logs)], batch_size=2000)
    return [row.id for row in rows]


class _Statements:
    """Every statement on the connection, raw cursors included (``execute_wrapper``)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)


def test_clean_deletes_in_batches_by_primary_key_without_loading_rows(db):
    doomed = _jobs(5_000, "completed", timedelta(days=2), logs=2)
    kept = _jobs(10, "completed", timedelta(minutes=1), logs=1)
    other_queue = _jobs(10, "completed", timedelta(days=2), queue="analytics", logs=1)
    seen = _Statements()
    with connection.execute_wrapper(seen):
        deleted = retention.clean(QueueName.EMAIL, timedelta(hours=1), "completed")
    assert deleted == 5_000
    table, logs = Job._meta.db_table, JobLog._meta.db_table
    job_deletes = [s for s in seen.sql if s.startswith(f'DELETE FROM "{table}"')]
    log_deletes = [s for s in seen.sql if s.startswith(f'DELETE FROM "{logs}"')]
    batches = math.ceil(5_000 / retention.DELETE_BATCH)
    assert len(job_deletes) == len(log_deletes) == batches
    assert all('"id" IN (' in s and "RETURNING" in s for s in job_deletes)
    # No statement reads a job's columns beyond its id: no model instances.
    reads = [s for s in seen.sql if s.startswith("SELECT") and table in s]
    assert reads and all(f'"{table}"."data"' not in s and f'"{table}"."errors"' not in s
                         for s in reads), reads
    assert not Job.objects.filter(pk__in=doomed).exists()
    assert not JobLog.objects.filter(job_id__in=doomed).exists()
    assert set(Job.objects.values_list("id", flat=True)) == set(kept + other_queue)
    assert JobLog.objects.count() == 20


def test_a_clean_allocates_memory_per_batch_not_per_row(db):
    """Python allocations while cleaning 20,000 jobs of ~2 KB each: ids only, a batch at a
    time (the ORM's cascade held every row: ~60 MB RSS for 20,000 in bench/retention.py)."""
    _jobs(20_000, "completed", timedelta(days=2), logs=1)
    tracemalloc.start()
    try:
        assert retention.clean(QueueName.EMAIL, timedelta(hours=1), "completed") == 20_000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_a_job_that_left_the_state_meanwhile_is_kept_with_its_logs(db):
    [job_id] = _jobs(1, "failed", timedelta(days=9), logs=2)
    assert retention.delete_jobs([job_id], ["completed"]) == []
    assert Job.objects.filter(pk=job_id).exists() and JobLog.objects.filter(job_id=job_id).count() == 2
    assert retention.delete_jobs([job_id], ["failed"]) == [job_id]
    assert not JobLog.objects.filter(job_id=job_id).exists()


def test_limit_and_keep_newest_work_in_batches_too(db, monkeypatch):
    monkeypatch.setattr(retention, "DELETE_BATCH", 7)
    _jobs(30, "completed", timedelta(days=2), logs=1)
    assert retention.clean(QueueName.EMAIL, 0, "completed", limit=10) == 10
    assert Job.objects.count() == 20
    assert retention.keep_newest(QueueName.EMAIL, "completed", 5) == 15
    assert Job.objects.count() == 5 and JobLog.objects.count() == 5


def test_remove_deletes_the_logs_and_refuses_an_active_job(db):
    [done] = _jobs(1, "completed", timedelta(minutes=1), logs=3)
    [running] = _jobs(1, "active", timedelta(minutes=1), logs=1)
    assert actions.remove_job(done) is True
    assert not Job.objects.filter(pk=done).exists() and not JobLog.objects.filter(job_id=done).exists()
    assert actions.remove_job(running) is False
    assert Job.objects.filter(pk=running).exists()
    assert actions.remove_job("missing") is False


def test_retry_all_does_not_read_the_failed_jobs_tracebacks(db, monkeypatch):
    monkeypatch.setattr("tasks.operate.actions.publish_on_commit", lambda messages: None)
    _jobs(50, "failed", timedelta(minutes=5), queue="data-processing", name="record",
          data={"key": "k"})
    with CaptureQueriesContext(connection) as queries:
        assert actions.retry_failed("data-processing", "ops") == 50
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert selects and not any('"errors"' in sql for sql in selects), selects


# -- big operations as a background job ------------------------------------------------


def test_a_small_clean_runs_at_once(db):
    _jobs(20, "completed", timedelta(days=2))
    outcome = bulk.clean_or_schedule("email", timedelta(hours=1), "completed", "ops")
    assert (outcome.total, outcome.done, outcome.job_id) == (20, 20, None)
    assert not outcome.in_background and Job.objects.count() == 0


def test_a_big_clean_runs_as_a_job_with_progress(service):
    doomed = _jobs(5_000, "completed", timedelta(days=2), logs=1)
    kept = _jobs(5, "completed", timedelta(minutes=1))
    outcome = bulk.clean_or_schedule("email", timedelta(hours=1), "completed", "ops",
                                     background_from=1_000)
    assert outcome.in_background and outcome.total == 5_000 and outcome.done is None
    job = wait_state(outcome.job_id, "completed", timeout=60)
    assert (job.queue, job.name) == ("analytics", "queue-operation")
    assert job.result == {"operation": "clean", "queue": "email", "done": 5_000, "found": 5_000}
    assert job.progress == 100
    lines = list(JobLog.objects.filter(job_id=job.id).values_list("message", flat=True))
    assert lines[0] == "clean of 5,000 job(s) of email asked by ops"
    assert lines[1:] == [f"deleted completed job(s) of email: {n:,} of 5,000"
                         for n in (2_000, 4_000, 5_000)]
    assert not Job.objects.filter(pk__in=doomed).exists()
    assert set(Job.objects.filter(queue="email").values_list("id", flat=True)) == set(kept)


def test_a_big_retry_all_runs_as_a_job(service):
    failed = _jobs(12, "failed", timedelta(minutes=5), queue="data-processing", name="record",
                   data={"key": "again"})
    outcome = bulk.retry_failed_or_schedule("data-processing", "ops", background_from=5)
    assert outcome.in_background and outcome.total == 12
    job = wait_state(outcome.job_id, "completed", timeout=60)
    assert job.result["done"] == 12 and job.progress == 100
    for job_id in failed:
        wait_state(job_id, "completed", timeout=60)


def test_a_cancelled_background_operation_stops_after_its_batch(db, monkeypatch):
    monkeypatch.setattr(retention, "DELETE_BATCH", 10)
    _jobs(35, "completed", timedelta(days=2))
    row = Job.objects.create(id=new_job_id(), queue="analytics", name="queue-operation",
                             state="active", created_at=timezone.now(), cancel_requested=True)
    job = JobContext(id=row.id, queue="analytics", name="queue-operation", data={})
    with pytest.raises(JobCancelled):
        bulk.run_operation(job, "clean", "email", "ops", "completed",
                           (timezone.now() - timedelta(hours=1)).isoformat())
    assert Job.objects.filter(queue="email").count() == 25  # one batch went, committed


@pytest.mark.parametrize("data, message", [
    ({"operation": "drop-everything", "queue": "email", "by": "x"}, "operation must be one of"),
    ({"operation": "clean", "queue": "email", "by": "x", "state": "active",
      "before": "2026-01-01T00:00:00+00:00"}, "state must be one of"),
    ({"operation": "clean", "queue": "email", "by": "x", "state": "completed",
      "before": "yesterday"}, "before must be an ISO 8601"),
    ({"operation": "retry-failed", "queue": "emial", "by": "x"}, "queue 'emial'"),
])
def test_the_operation_job_refuses_bad_data_at_enqueue(db, data, message):
    from tasks.jobs.errors import JobInputError
    from tasks.queues import add_job

    with pytest.raises(JobInputError, match=message):
        add_job(QueueName.ANALYTICS, "queue-operation", data)
    assert Job.objects.count() == 0
