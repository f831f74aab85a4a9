"""``add_job`` and both ``add_bulk`` write paths store the same row.

On PostgreSQL a bulk of ids made here goes in by ``COPY``; one with a
caller-chosen id by ``INSERT … SELECT FROM unnest … ON CONFLICT DO NOTHING``;
a single job by ``INSERT … VALUES``. On SQLite all are INSERTs. The
transaction is rolled back after each test, so nothing is published.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.models import Job
from tasks.queues import JobPriority, QueueName, add_bulk, add_job

#: Columns that differ between two enqueues of the same job by design.
_PER_ENQUEUE = {"id", "created_at", "enqueued_at", "published_at", "run_at"}
DATA = {"key": "tab\there \"quoted\" \\ back\nslash é ✓", "sleep": 0.0}
OPTIONS = {"priority": JobPriority.HIGH, "attempts": 5,
           "backoff": {"type": "fixed", "delay": 2000}}


def _stored(job_id: str) -> dict:
    row = Job.objects.filter(pk=job_id).values().get()
    return {name: value for name, value in row.items() if name not in _PER_ENQUEUE}


@pytest.mark.parametrize("delay", [None, 30_000], ids=["waiting", "delayed"])
def test_a_bulk_job_is_stored_as_add_job_stores_it(db, delay):
    single = add_job(QueueName.ANALYTICS, "record-analytics", DATA, delay=delay, **OPTIONS)
    fresh, = add_bulk([{"queue": "analytics", "name": "record-analytics", "data": DATA,
                        "delay": delay, **OPTIONS}])
    chosen = add_bulk([{"queue": "analytics", "name": "record-analytics", "data": DATA,
                        "delay": delay, "job_id": f"chosen-{delay}", **OPTIONS}])[0]

    expected = _stored(single)
    assert expected["data"] == DATA and expected["state"] == ("delayed" if delay else "waiting")
    assert _stored(fresh) == expected
    assert _stored(chosen) == expected
    for job_id in (fresh, chosen):
        job = Job.objects.get(pk=job_id)
        assert (job.run_at is None) == (delay is None)
        if delay:
            assert timedelta(seconds=29) < job.run_at - job.created_at <= timedelta(seconds=30)


def test_a_bulk_of_a_thousand_made_ids_stores_each_job_once(db):
    ids = add_bulk([{"queue": "analytics", "name": "record-analytics", "data": {"key": f"k{i}"}}
                    for i in range(1000)])

    assert len(set(ids)) == 1000
    stored = dict(Job.objects.filter(pk__in=ids).values_list("id", "data"))
    assert stored == {job_id: {"key": f"k{i}"} for i, job_id in enumerate(ids)}


def test_a_bulk_skips_caller_chosen_ids_that_exist_and_adds_the_rest(db):
    add_job(QueueName.ANALYTICS, "record-analytics", {"key": "first"}, job_id="report-1")

    ids = add_bulk([
        {"queue": "analytics", "name": "record-analytics", "data": {"key": "again"},
         "job_id": "report-1"},
        {"queue": "analytics", "name": "record-analytics", "data": {"key": "new"}},
    ])

    assert ids[0] == "report-1"
    assert Job.objects.get(pk="report-1").data == {"key": "first"}
    assert Job.objects.get(pk=ids[1]).data == {"key": "new"}
