"""Unique jobs and debounce (BullMQ's deduplication): windows on record, apart from the job rows.

Adds from several processes at once show the one deciding statement at work
(tasks/enqueue/windows.py): exactly one job per window, whoever adds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from django.utils import timezone

from tasks.jobs import permissions
from tasks.jobs.errors import InvalidWindowError
from tasks.models import Job, JobWindow
from tasks.queues import QueueName, add_bulk, add_job
from tasks.upkeep.retention import delete_jobs, enforce_retention
from tests import processes
from tests.integration.helpers import staff_user, wait_state
from tests.testapp.models import Execution

HOUR = timedelta(hours=1)


def _add(data: dict, **options) -> str:
    return add_job(QueueName.DATA_PROCESSING, "record", data, **options)


def test_a_second_add_within_the_window_returns_the_first_jobs_id(db):
    first = _add({"key": "a", "sleep": 0}, unique_for=HOUR, delay=HOUR)
    again = _add({"sleep": 0, "key": "a"}, unique_for=HOUR, delay=HOUR)  # same data, other order
    other = _add({"key": "b"}, unique_for=HOUR, delay=HOUR)
    assert again == first
    assert other != first
    assert Job.objects.count() == 2
    named = _add({"key": "c"}, unique_for=HOUR, unique_key="report-42", delay=HOUR)
    assert _add({"key": "d"}, unique_for=HOUR, unique_key="report-42", delay=HOUR) == named
    assert Job.objects.count() == 3


def test_a_window_outlives_its_job_row_and_ends_at_its_expiry(db):
    first = _add({"key": "kept"}, unique_for=HOUR, delay=HOUR)
    delete_jobs([first])  # as retention or remove would
    assert _add({"key": "kept"}, unique_for=HOUR, delay=HOUR) == first
    assert not Job.objects.exists()  # nothing added while the window lasts

    short = _add({"key": "short"}, unique_for=200, delay=HOUR)
    time.sleep(0.25)
    later = _add({"key": "short"}, unique_for=200, delay=HOUR)
    assert later != short  # a new window, a new job
    assert Job.objects.filter(pk=later).exists()


def test_the_retention_pass_deletes_expired_windows_only(db):
    _add({"key": "live"}, unique_for=HOUR, delay=HOUR)
    _add({"key": "dead"}, unique_for=100, delay=HOUR)
    time.sleep(0.15)
    enforce_retention()
    assert list(JobWindow.objects.values_list("kind", "job_id")) == [
        ("unique", Job.objects.get(data__key="live").pk)]


def test_debounce_replaces_the_pending_jobs_data_and_moves_its_start(db):
    first = _add({"key": "v1"}, debounce=2000)
    job = Job.objects.get(pk=first)
    assert job.state == "delayed"
    first_start = job.run_at
    time.sleep(0.05)
    second = _add({"key": "v2", "sleep": 0.1}, debounce=3000, priority=1)

    assert second == first
    job = Job.objects.get(pk=first)
    assert job.data == {"key": "v2", "sleep": 0.1}
    assert job.priority == 1
    assert job.run_at >= first_start + timedelta(milliseconds=1000)  # 3 s from the later add
    assert Job.objects.count() == 1
    window = JobWindow.objects.get()
    assert (window.kind, window.job_id, window.expires_at) == ("debounce", first, job.run_at)


def test_debounce_after_the_pending_job_started_adds_a_new_one(db):
    first = _add({"key": "v1"}, debounce=HOUR)
    Job.objects.filter(pk=first).update(state="active", started_at=timezone.now())
    second = _add({"key": "v2"}, debounce=HOUR)
    assert second != first
    assert Job.objects.get(pk=first).data == {"key": "v1"}  # the running job is left alone
    assert JobWindow.objects.get().job_id == second
    assert _add({"key": "v3"}, debounce=HOUR) == second


def test_debounced_job_runs_once_with_the_last_data_on_a_real_worker(service):
    ids = {_add({"key": f"burst-{n}"}, debounce=700, unique_key="burst") for n in range(5)}
    assert len(ids) == 1
    wait_state(ids.pop(), "completed", timeout=30)
    assert list(Execution.objects.values_list("key", flat=True)) == ["burst-4"]


def test_add_bulk_and_apply_async_take_the_windows(db):
    from tests.testapp.processors import record

    item = {"queue": "data-processing", "name": "record", "data": {"key": "bulk"},
            "unique_for": 60_000, "delay": 60_000}
    ids = add_bulk([item, {**item, "data": {"key": "other"}}, item])
    assert ids[0] == ids[2] != ids[1]
    assert Job.objects.count() == 2
    result = record.apply_async(kwargs={"key": "bulk"}, unique_for=60_000, countdown=60)
    assert result.id == ids[0]


@pytest.mark.parametrize("options, named", [
    ({"unique_for": 0}, "unique_for 0 is invalid"),
    ({"unique_for": "1h"}, "unique_for '1h'"),
    ({"unique_key": "k"}, "unique_key 'k' is invalid: it names a unique_for or debounce"),
    ({"unique_for": 1000, "debounce": 1000}, "not both"),
    ({"debounce": 1000, "delay": 5}, "do not give delay too"),
    ({"debounce": 1000, "job_id": "x"}, "not job_id"),
    ({"unique_for": 1000, "unique_key": "a\nb"}, "printable"),
])
def test_a_window_that_cannot_be_honoured_is_refused(db, options, named):
    with pytest.raises(InvalidWindowError, match=named):
        _add({"key": "x"}, **options)
    assert not Job.objects.exists() and not JobWindow.objects.exists()


def _run_enqueuers(tmp_path: Path, broker: str, mode: str, *args: str,
                   processes_n: int = 4) -> list[tuple[str, float, str]]:
    out = tmp_path / f"{mode}.out"
    start = time.time() + 4  # each process sets Django up first
    env = processes.base_env(broker, tmp_path)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.window_enqueuer", "--mode", mode,
         "--name", f"p{n}", "--start", str(start), "--out", str(out), *args],
        env=env, cwd=processes.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for n in range(processes_n)]
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    lines = [line.split() for line in out.read_text().splitlines()]
    return [(job_id, float(at), n) for job_id, at, n in lines]


def test_concurrent_unique_adds_from_several_processes_make_one_job(transactional_db, broker,
                                                                  tmp_path):
    adds = _run_enqueuers(tmp_path, broker, "unique", "--window-ms", "600000", "--count", "25")
    assert len(adds) == 100
    assert len({job_id for job_id, _, _ in adds}) == 1
    assert Job.objects.count() == 1


def test_one_job_per_window_while_processes_keep_adding(transactional_db, broker, tmp_path):
    window = timedelta(milliseconds=400)
    adds = _run_enqueuers(tmp_path, broker, "unique", "--window-ms", "400", "--for-s", "2.5")
    created = sorted(Job.objects.values_list("created_at", flat=True))
    print(f"{len(adds)} adds from 4 processes in 2.5 s: {len(created)} jobs")
    assert len(adds) > 4 * len(created)  # most adds were within a window
    assert {job_id for job_id, _, _ in adds} == set(Job.objects.values_list("pk", flat=True))
    gaps = [later - earlier for earlier, later in pairwise(created)]
    assert gaps and min(gaps) >= window, gaps  # never two jobs in one window
    assert len(created) >= 3  # windows expired and the next add opened a new one


def test_concurrent_debounced_adds_from_several_processes_keep_one_pending_job(
        transactional_db, broker, tmp_path):
    adds = _run_enqueuers(tmp_path, broker, "debounce", "--window-ms", "600000", "--count", "25")
    assert len(adds) == 100
    assert len({job_id for job_id, _, _ in adds}) == 1
    job = Job.objects.get()
    assert job.state == "delayed"
    assert job.data["key"] in {n for _, _, n in adds}
    # The data of the add that returned last won (within the clock's resolution).
    last = max(adds, key=lambda add: add[1])
    assert job.data["key"] == last[2] or sorted(a[1] for a in adds)[-2] > last[1] - 0.005


def test_the_http_api_takes_the_window_and_time_limit_options(db, client):
    client.force_login(staff_user("api", permissions.ENQUEUE))
    body = {"queue": "notifications", "name": "send-reminder", "data": {"message": "hi"},
            "options": {"unique_for": 60_000, "delay": 60_000, "timeout": 5000,
                        "soft_timeout": 2000}}

    def post(body):
        return client.post("/api/jobs", data=json.dumps(body), content_type="application/json")

    first, again = post(body), post(body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    job = Job.objects.get()
    assert (job.timeout_ms, job.soft_timeout_ms) == (5000, 2000)
    bad = post({**body, "options": {"debounce": -1}})
    assert bad.status_code == 400
    assert bad.json() == {"error": "debounce -1 is invalid: give milliseconds (or a timedelta) "
                                   "above 0 and up to 31536000000 (a year)",
                          "kind": "InvalidWindowError"}
