"""Cron exactly once: two beat processes, and a beat killed and restarted."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tasks.models import Job
from tests import processes
from tests.processes import wait_for
from tests.testapp.models import Execution


def _schedule(name: str, every: int) -> None:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name=name, task="analytics.record-analytics", interval=interval,
                                kwargs=json.dumps({"key": name}))


def _firings(name: str) -> list[datetime]:
    prefix = f"cron:{name}:"
    ids = Job.objects.filter(pk__startswith=prefix).values_list("id", flat=True)
    return sorted(datetime.strptime(i[len(prefix):], "%Y-%m-%dT%H:%M:%SZ") for i in ids)


@pytest.fixture
def beats(service, live_broker, tmp_path):
    started = []

    def start(name: str) -> processes.ServiceProcess:
        proc = processes.beat(live_broker, tmp_path, name, BEAT_MAX_LOOP_INTERVAL="1").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_two_beats_at_once_fire_each_schedule_once(beats):
    # Counted from the schedule's creation: a beat that starts late fires the
    # buckets it missed (no firing is skipped), so they count too.
    started = time.monotonic()
    _schedule("two-beats", every=2)
    beats("beat-a")
    beats("beat-b")
    wait_for(lambda: len(_firings("two-beats")) >= 5, 30, message="5 firings")
    elapsed = time.monotonic() - started
    time.sleep(1)
    firings = _firings("two-beats")
    gaps = {(b - a).total_seconds() for a, b in zip(firings, firings[1:], strict=False)}
    assert gaps == {2.0}, firings  # one job per 2-second firing, none doubled or skipped
    assert len(firings) <= elapsed / 2 + 2
    wait_for(lambda: Execution.objects.filter(key="two-beats").count() >= len(firings), 20,
             message="the fired jobs to run")
    assert Execution.objects.filter(key="two-beats").count() == Job.objects.filter(
        pk__startswith="cron:two-beats:").count()


def test_beat_killed_and_restarted_neither_skips_nor_repeats(beats):
    _schedule("restarted", every=4)
    first = beats("beat-1")
    wait_for(lambda: len(_firings("restarted")) >= 2, 30, message="2 firings")
    first.signal(signal.SIGKILL)
    first.process.wait(10)
    beats("beat-2")
    count = len(_firings("restarted"))
    wait_for(lambda: len(_firings("restarted")) >= count + 2, 30, message="firings after restart")
    firings = _firings("restarted")
    gaps = [(b - a).total_seconds() for a, b in zip(firings, firings[1:], strict=False)]
    assert set(gaps) == {4.0}, firings


def test_each_firing_is_on_the_schedule_row_before_the_next(beats):
    """A killed beat restarts from its real last firing, however long it had run.

    Celery writes a schedule's last run every 3 minutes by default: a beat
    killed after running a while left a row minutes stale, beyond the catch-up
    window, and the seconds it was down were never fired (the soak saw 36).
    """
    _schedule("synced", every=1)
    first = beats("beat-synced")
    wait_for(lambda: len(_firings("synced")) >= 4, 30, message="4 firings")
    time.sleep(0.5)
    task = PeriodicTask.objects.get(name="synced")
    latest = _firings("synced")[-1]
    assert task.last_run_at.replace(tzinfo=None) >= latest - timedelta(seconds=1), \
        (task.last_run_at, latest)
    first.signal(signal.SIGKILL)
    first.process.wait(10)
    time.sleep(3)  # seconds with no beat
    beats("beat-synced-2")
    wait_for(lambda: _firings("synced")[-1] >= latest + timedelta(seconds=8), 30,
             message="firings after the restart")
    firings = _firings("synced")
    gaps = [(b - a).total_seconds() for a, b in zip(firings, firings[1:], strict=False)]
    assert set(gaps) == {1.0}, firings  # the seconds without a beat were fired on restart
