"""A live beat driven through daylight-saving nights with a controlled clock.

Each beat process starts with its clock moved (time-machine, ticking on from
there) to seconds before a firing; the job rows it writes show which firings
happened. The rule (tasks/upkeep/scheduler.py): a wall time skipped by
spring-forward runs once at the UTC instant it had on the old offset; a wall
time that occurs twice at fall-back runs once, at its first occurrence.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import pytest
from django_celery_beat.models import PeriodicTask

from tasks.models import Job
from tasks.queues import QueueName, add_repeatable_job
from tests import processes
from tests.processes import wait_for

NAME = "berlin-0230"


def beat_at(live_broker: str, tmp_path, moment: datetime, label: str):
    """A real beat process whose clock starts at ``moment`` and ticks on."""
    beat = processes.beat(live_broker, tmp_path, label, BEAT_MAX_LOOP_INTERVAL="1")
    code = ("import sys, datetime, time_machine; "
            f"time_machine.travel(datetime.datetime.fromisoformat({moment.isoformat()!r}), "
            "tick=True).start(); "
            "from celery.__main__ import main; sys.argv[0] = 'celery'; sys.exit(main())")
    beat.args = [sys.executable, "-c", code, *beat.args[1:]]
    return beat.start()


def firings() -> list[str]:
    return sorted(Job.objects.filter(pk__startswith=f"cron:{NAME}:").values_list("pk", flat=True))


@pytest.fixture
def berlin_0230(broker, transactional_db) -> PeriodicTask:
    return add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, "30 2 * * *",
                              timezone="Europe/Berlin", schedule_name=NAME)


def test_spring_forward_runs_the_skipped_wall_time_once(berlin_0230, live_broker, tmp_path):
    # 02:30 CET on 28 March was 01:30 UTC; on 29 March 02:30 does not exist in Berlin.
    PeriodicTask.objects.filter(pk=berlin_0230.pk).update(
        last_run_at=datetime(2026, 3, 28, 1, 30, tzinfo=UTC))
    beat = beat_at(live_broker, tmp_path, datetime(2026, 3, 29, 1, 29, 50, tzinfo=UTC), "spring")
    try:
        wait_for(firings, 40, message=f"beat to fire (log: {beat.log_path})")
        time.sleep(3)
    finally:
        beat.stop()
    assert firings() == [f"cron:{NAME}:2026-03-29T01:30:00Z"]  # 03:30 CEST, once


def test_fall_back_runs_the_repeated_wall_time_once(berlin_0230, live_broker, tmp_path):
    # 02:30 occurs at 00:30 UTC (CEST) and again at 01:30 UTC (CET) on 25 October.
    PeriodicTask.objects.filter(pk=berlin_0230.pk).update(
        last_run_at=datetime(2026, 10, 24, 0, 30, tzinfo=UTC))
    first = beat_at(live_broker, tmp_path, datetime(2026, 10, 25, 0, 29, 50, tzinfo=UTC), "first")
    try:
        wait_for(firings, 40, message=f"the first firing (log: {first.log_path})")
    finally:
        first.stop()
    # What beat saves as the last run (it syncs every few minutes and when it stops; set
    # here so the second beat's view does not depend on how the first one was stopped).
    PeriodicTask.objects.filter(pk=berlin_0230.pk).update(
        last_run_at=datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    second = beat_at(live_broker, tmp_path, datetime(2026, 10, 25, 1, 29, 50, tzinfo=UTC),
                     "second")
    try:
        time.sleep(17)  # past the second 02:30 (01:30 UTC)
        assert "Sending due task" not in second.log_text(), second.log_text()[-2000:]
    finally:
        second.stop()
    assert firings() == [f"cron:{NAME}:2026-10-25T00:30:00Z"]  # 02:30 CEST, once
