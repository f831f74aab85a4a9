"""Global rate limits on real workers: held by the promoter, across every worker, changeable live."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from tasks.enqueue import ratelimits
from tasks.jobs import permissions
from tasks.jobs.errors import InvalidRateError
from tasks.models import Job, QueueControl, RateWindow
from tasks.operate import actions
from tasks.operate.dashboard import diagnosis
from tasks.queues import QueueName, add_bulk, add_job
from tests import processes
from tests.integration.helpers import queue_length, staff_user, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution

LIMIT = 40  # jobs per second


@pytest.fixture
def limited(db):
    actions.set_rate_limit("analytics", "record-analytics", f"{LIMIT}/s", by="test")
    yield
    actions.set_rate_limit("analytics", "record-analytics", "", by="test")


def test_a_limited_job_waits_as_a_due_row_and_says_why(limited, broker):
    job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "gated"})

    job = Job.objects.get(pk=job_id)
    assert job.state == "delayed" and queue_length("analytics") == 0
    assert any(line.startswith("Rate limited") and f"{LIMIT}/s" in line
               for line in diagnosis.reasons(job))
    assert not ratelimits.limited("analytics", "hourly-stats")  # other jobs are not gated


def test_two_workers_stay_within_five_percent_of_the_limit(service, limited, live_broker,
                                                           tmp_path):
    second = processes.worker(live_broker, tmp_path, "second", queues="analytics").start()
    try:
        total = 20 * LIMIT
        ids = add_bulk([{"queue": "analytics", "name": "record-analytics",
                         "data": {"key": f"r{n}"}} for n in range(total)])
        for job_id in ids:
            wait_state(job_id, "completed", timeout=60)
    finally:
        second.stop()
    starts = sorted(Job.objects.filter(pk__in=ids).values_list("started_at", flat=True))
    workers = set(Job.objects.filter(pk__in=ids).values_list("worker", flat=True))
    # Windows are whole seconds of the clock. The observed rate is read between two clock
    # seconds well inside the run: jobs started between them over the seconds between them.
    # The ends are left out: the first window is partial, and on a busy machine its jobs
    # start late, next to the second window's (jobs / (last start - first start) moved by
    # 6-20 % with that); between two inner boundaries such a lag shifts as many jobs out
    # at one end as in at the other.
    stamps = [start.timestamp() for start in starts]
    t1, t2 = int(stamps[0]) + 2, int(stamps[-1])
    rate = sum(t1 <= stamp < t2 for stamp in stamps) / (t2 - t1)
    print("observed rate", rate)
    assert abs(rate - LIMIT) / LIMIT <= 0.05, rate
    assert len(workers) == 2  # both workers ran them
    windows = list(RateWindow.objects.values_list("used", flat=True))
    assert max(windows) <= LIMIT and sum(windows) == total


def test_a_processor_told_to_slow_down_holds_the_queue_on_every_worker(service):
    job_id = add_job(QueueName.ANALYTICS, "told-to-slow-down", {"key": "429", "hold_ms": 3000})
    wait_for(lambda: QueueControl.objects.filter(queue="analytics",
                                                 held_until__isnull=False).exists(), 20,
             message="the queue to be held")
    held_until = QueueControl.objects.get(queue="analytics").held_until
    assert Job.objects.get(pk=job_id).attempts_made == 0  # the 429 used no attempt
    time.sleep(2.5)  # every worker's heartbeat has seen the hold
    other = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "during-hold"})

    done = wait_state(other, "completed", timeout=30)
    assert done.started_at >= held_until  # nothing of the queue ran during the hold
    job = wait_state(job_id, "completed", timeout=30)
    assert job.result == "through" and job.attempts_made == 1
    assert job.started_at >= held_until


def test_the_dashboard_sets_and_lifts_a_limit_without_a_restart(db, client):
    client.force_login(staff_user("ops", permissions.VIEW, permissions.OPERATE))
    url = reverse("dashboard:rate-limit", args=["email"])

    client.post(url, {"name": "", "rate": "100/min"})
    assert ratelimits.limited("email", "send-welcome-email")
    assert "email" in client.get(reverse("dashboard:queue", args=["email"])).content.decode()
    client.post(url, {"name": "", "rate": ""})
    assert not ratelimits.limited("email", "send-welcome-email")
    bad = client.post(url, {"name": "", "rate": "lots"}, follow=True)
    assert "is invalid" in bad.content.decode()
    with pytest.raises(InvalidRateError):
        actions.set_rate_limit("email", "", "0/s")
    assert Execution.objects.count() == 0
