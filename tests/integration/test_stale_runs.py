"""A run the reconciler gave up on cannot touch the job another worker now runs.

The multi-host test (``tests/multihost``) cuts a host off mid-job; when its
link comes back, the old run finishes its body. Here the same sequence is
played out on the job record itself, for each way a run can end.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import Job
from tasks.queues import QueueName, add_job
from tasks.worker import lifecycle
from tasks.worker.lost import give_back
from tests.integration.helpers import shared_worker_paused


@pytest.fixture
def rerun(service):
    """A job claimed on host a, re-queued (host a silent), then claimed on host b.

    The shared worker stops consuming the queue meanwhile, so the claims here
    are the only ones; the messages left behind are skipped when it resumes.
    """
    with shared_worker_paused("data-processing"):
        job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "stale"})
        old = lifecycle.claim(job_id, "w1@host-a")
        assert old is not None
        assert give_back([job_id], "its worker stopped sending heartbeats", timezone.now()) == 1
        new = lifecycle.claim(job_id, "w2@host-b")
        assert new is not None and new.attempts_made == old.attempts_made
        yield job_id, old, new


def _row(job_id: str) -> Job:
    return Job.objects.get(pk=job_id)


def test_the_old_run_cannot_complete_it(rerun):
    job_id, old, new = rerun
    assert not lifecycle.complete(job_id, "from host a", run=old)
    job = _row(job_id)
    assert (job.state, job.worker, job.result) == ("active", "w2@host-b", None)
    assert lifecycle.complete(job_id, "from host b", run=new)
    assert _row(job_id).result == "from host b"


def test_the_old_run_cannot_fail_or_retry_it(rerun):
    job_id, old, new = rerun
    entry = {"attempt": 1, "error": "TimeoutError: late", "traceback": ""}
    assert lifecycle.record_failure(job_id, entry, timedelta(seconds=5), run=old) is None
    assert lifecycle.record_failure(job_id, entry, None, run=old) is None
    job = _row(job_id)
    assert job.state == "active" and job.worker == "w2@host-b"
    assert [e["error"] for e in job.errors] == ["WorkerLost: its worker stopped sending heartbeats"]
    assert lifecycle.record_failure(job_id, entry, None, run=new) == "failed"


def test_the_old_run_cannot_cancel_it(rerun):
    job_id, old, new = rerun
    assert not lifecycle.mark_cancelled(job_id, run=old)
    assert _row(job_id).state == "active"
    assert lifecycle.mark_cancelled(job_id, run=new)
    assert _row(job_id).state == "cancelled"


def test_a_batch_s_completions_hold_only_for_their_own_runs(rerun):
    """``complete_many`` (a batch's completions in one write) keeps each row's guard:
    the stale run is refused, the current runs complete with their own results."""
    job_id, old, new = rerun
    with shared_worker_paused("data-processing"):
        others = [add_job(QueueName.DATA_PROCESSING, "record", {"key": f"batch-{i}"})
                  for i in range(3)]
        claims = lifecycle.claim_many(others, "w3@host-c")
        assert set(claims) == set(others)
        results = [{"n": i, "nested": [i, "x"]} for i in range(3)]
        done = [(other, result, claims[other]) for other, result in zip(others, results,
                                                                         strict=True)]
        assert lifecycle.complete_many([(job_id, "from host a", old), *done]) == 3
    assert [(_row(o).state, _row(o).result) for o in others] == [("completed", r)
                                                                 for r in results]
    assert all(_row(o).finished_at is not None for o in others)
    job = _row(job_id)
    assert (job.state, job.result) == ("active", None)
    assert lifecycle.complete_many([(job_id, [1, None, "b"], new)]) == 1
    assert _row(job_id).result == [1, None, "b"]
