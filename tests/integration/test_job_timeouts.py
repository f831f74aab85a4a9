"""Per-job time limits on a real prefork worker: a clear timeout error, retried by backoff.

``timeout`` (hard) and ``soft_timeout`` go into Celery's ``timelimit`` header
from the job's row, so the first publish, the promoter's publish of a
delayed job and every retry carry them (tasks/jobs/timeouts.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app

from tasks.enqueue.sending import StockSender
from tasks.fastpath import templates
from tasks.jobs.errors import InvalidTimeoutError, UnsupportedOptionError
from tasks.jobs.timeouts import header_limits
from tasks.models import Job
from tasks.queues import QueueName, add_bulk, add_job
from tests.integration.helpers import wait_state
from tests.testapp.models import Execution
from tests.testapp.processors import slow

QUICK_RETRY = {"type": "fixed", "delay": 200}


def test_a_job_past_its_soft_timeout_fails_with_a_timeout_error_and_retries(service):
    # The queue preset's soft limit is 900 s: only the job's own limit can stop this.
    job_id = add_job(QueueName.ANALYTICS, "slow", {"key": "soft", "seconds": 20},
                     soft_timeout=1000, timeout=timedelta(seconds=8), attempts=2,
                     backoff=QUICK_RETRY)

    job = wait_state(job_id, "failed", timeout=40)

    assert job.attempts_made == 2  # the retry (published by the promoter) carried the limit too
    assert [e["error"] for e in job.errors] == [
        "JobTimeoutError: job exceeded its soft timeout of 1,000 ms"] * 2
    assert {e["exception"] for e in job.errors} == {"tasks.jobs.errors.JobTimeoutError"}
    assert "time.sleep" in job.errors[0]["traceback"]  # where the processor was stopped
    assert not Execution.objects.filter(key="soft").exists()
    assert (job.timeout_ms, job.soft_timeout_ms) == (8000, 1000)


def test_a_job_that_ignores_its_soft_timeout_is_stopped_at_the_hard_one(service):
    job_id = add_job(QueueName.ANALYTICS, "stubborn", {"key": "hard", "seconds": 30},
                     soft_timeout=1000, timeout=2500, attempts=2, backoff=QUICK_RETRY)

    job = wait_state(job_id, "failed", timeout=40)

    assert job.attempts_made == 2
    assert [e["error"] for e in job.errors] == [
        "JobTimeoutError: job exceeded its timeout of 2,500 ms: its process was stopped"] * 2
    assert Execution.objects.filter(key="hard:soft-ignored").count() == 2  # it saw the soft one
    assert not Execution.objects.filter(key="hard").exists()  # and never finished


def test_a_delayed_job_keeps_its_timeout_when_the_promoter_publishes_it(service):
    job_id = add_job(QueueName.ANALYTICS, "slow", {"key": "later", "seconds": 20},
                     delay=300, timeout=1500, attempts=1)

    job = wait_state(job_id, "failed", timeout=30)

    assert len(job.errors) == 1
    # Stopped by whichever comes first of the soft signal (same value) and the hard stop.
    assert job.errors[0]["error"].startswith("JobTimeoutError: job exceeded its timeout of "
                                             "1,500 ms"), job.errors[0]["error"]


def test_a_job_within_its_timeout_completes(service):
    ids = add_bulk([{"queue": "analytics", "name": "slow", "data": {"key": f"ok{n}",
                                                                   "seconds": 0.2},
                     "timeout": 5000} for n in range(2)])
    for job_id in ids:
        wait_state(job_id, "completed")
    assert Execution.objects.filter(key__startswith="ok").count() == 2


def test_celerys_own_time_limit_options_are_the_jobs_limits_in_seconds(db):
    result = slow.apply_async(kwargs={"key": "c"}, time_limit=6, soft_time_limit=2.5,
                              countdown=3600)
    job = Job.objects.get(pk=result.id)
    assert (job.timeout_ms, job.soft_timeout_ms) == (6000, 2500)
    with pytest.raises(UnsupportedOptionError, match="'time_limit'.*not both"):
        slow.apply_async(kwargs={"key": "c"}, time_limit=6, timeout=6000)


@pytest.mark.parametrize("options, named", [
    ({"timeout": 10}, "timeout 10 is invalid"),  # 10 ms: more likely seconds
    ({"timeout": float("nan")}, "timeout nan"),
    ({"timeout": "5s"}, "timeout '5s'"),
    ({"timeout": 10 ** 12}, "below the broker's visibility timeout"),
    ({"soft_timeout": 3000, "timeout": 2000}, "it must end before timeout \\(2000 ms\\)"),
    # analytics' preset hard limit is 960 s
    ({"soft_timeout": timedelta(seconds=960)}, "before the job's hard time limit \\(960 s"),
])
def test_a_limit_that_cannot_hold_is_refused_at_the_call(db, options, named):
    with pytest.raises(InvalidTimeoutError, match=named):
        add_job(QueueName.ANALYTICS, "record-analytics", {"key": "x"}, **options)
    assert not Job.objects.exists()


def test_a_limit_given_alone_fills_both_header_values():
    """Without a soft value of its own the task's shorter soft limit would fire first."""
    assert header_limits(None, None) is None
    assert header_limits(5000, None) == (5.0, 5.0)
    assert header_limits(None, 1500) == (None, 1.5)
    assert header_limits(5000, 1500) == (5.0, 1.5)


def test_both_publish_paths_put_the_limits_in_celerys_header(db):
    with current_app.connection_for_write() as connection:
        stock = templates.Recorder(connection)
        StockSender(current_app, stock, batched=False).send(
            "limits-1", slow.name, "analytics", {"key": "k"}, 3, limits=(5.0, 1.5))
        template = templates.record(current_app, connection, slow, "analytics", False, (5.0, 1.5))
        problem = templates.verify(current_app, connection, slow, "analytics", template,
                                   (5.0, 1.5))
        plain = templates.record(current_app, connection, slow, "analytics", False)
    assert list(stock.published[1]["headers"]["timelimit"]) == [5.0, 1.5]
    assert list(template.options["headers"]["timelimit"]) == [5.0, 1.5]
    assert problem is None  # the templated message equals Celery's own, limits included
    assert list(plain.options["headers"]["timelimit"]) == [960, 900]  # the task's
