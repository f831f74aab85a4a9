"""Firing times: the same for every beat process, and the DST rule in docs."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from celery import schedules
from django_celery_beat.tzcrontab import TzAwareCrontab

from tasks.upkeep.scheduler import firing_job_id, firing_time

BERLIN = ZoneInfo("Europe/Berlin")


def simulate(start: datetime, hours: int, step_s: int = 30) -> list[datetime]:
    """Run a 02:30 Europe/Berlin crontab on a simulated clock; return nominal fire times."""
    clock = [start]
    cron = TzAwareCrontab(minute="30", hour="2", tz=BERLIN)
    cron.nowfun = lambda: clock[0].astimezone(BERLIN)
    last = start
    fired = []
    t = start
    while t < start + timedelta(hours=hours):
        clock[0] = t
        due, _ = cron.is_due(last.astimezone(BERLIN))
        if due:
            fired.append(firing_time(cron, last.astimezone(BERLIN), t.astimezone(BERLIN)))
            last = t
        t += timedelta(seconds=step_s)
    return fired


def test_spring_forward_runs_once_at_the_old_offset_instant():
    fired = simulate(datetime(2026, 3, 28, 12, tzinfo=UTC), 48)
    local = [f.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") for f in fired]
    assert local == ["2026-03-29 03:30 CEST", "2026-03-30 02:30 CEST"]


def test_fall_back_runs_once_at_the_first_occurrence():
    fired = simulate(datetime(2026, 10, 24, 12, tzinfo=UTC), 48)
    local = [f.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") for f in fired]
    assert local == ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]


def test_two_beats_with_different_last_runs_name_the_same_cron_firing():
    cron = schedules.crontab(minute="*/5")
    cron.nowfun = lambda: datetime(2026, 11, 28, 10, 5, 20, tzinfo=UTC)
    now = datetime(2026, 11, 28, 10, 5, 20, tzinfo=UTC)
    a = firing_time(cron, datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC), now)
    b = firing_time(cron, datetime(2026, 11, 28, 10, 0, 40, tzinfo=UTC), now + timedelta(seconds=3))
    assert a == b == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    assert firing_job_id("daily-cleanup", a) == "cron:daily-cleanup:2026-11-28T10:05:00Z"


def test_interval_firings_fall_in_epoch_aligned_buckets():
    every = schedules.schedule(timedelta(seconds=10))
    t0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    assert firing_time(every, t0, t0 + timedelta(seconds=3)) == t0
    assert firing_time(every, t0, t0 + timedelta(seconds=9.9)) == t0
    assert firing_time(every, t0, t0 + timedelta(seconds=10.1)) == t0 + timedelta(seconds=10)


def test_interval_is_due_once_per_bucket_whatever_the_loop_latency():
    from tasks.upkeep.scheduler import interval_due

    t0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    # fired late in bucket 0 (at 1.99 s); the next check at 2.01 s is due again
    assert interval_due(2, t0 + timedelta(seconds=1.99), t0 + timedelta(seconds=2.01)).is_due
    # but not twice in one bucket
    state = interval_due(2, t0 + timedelta(seconds=2.01), t0 + timedelta(seconds=3.5))
    assert not state.is_due and abs(state.next - 0.5) < 1e-6


def test_a_tick_late_by_more_than_the_interval_fires_the_bucket_it_would_skip():
    """Found by the full-strength soak: a 1 s schedule's tick delayed 1.3 s by a slow
    database write named the current bucket, and the one before it never fired."""
    every = schedules.schedule(timedelta(seconds=1))
    t0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    # given bucket t0 fired (its nominal time is the last run), when the next tick is
    # 2.4 s later, then it fires bucket t0+1, and the tick after that bucket t0+2
    assert firing_time(every, t0, t0 + timedelta(seconds=2.4)) == t0 + timedelta(seconds=1)
    assert firing_time(every, t0 + timedelta(seconds=1), t0 + timedelta(seconds=2.5)) == (
        t0 + timedelta(seconds=2))
    # a bucket missed longer ago than MAX_CATCH_UP_S is not replayed
    from tasks.upkeep.scheduler import MAX_CATCH_UP_S

    late = t0 + timedelta(seconds=MAX_CATCH_UP_S + 5.5)
    assert firing_time(every, t0, late) == late.replace(microsecond=0)


def test_an_interval_behind_by_several_buckets_is_checked_again_at_once():
    from tasks.upkeep.scheduler import interval_due

    t0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    # last fired bucket t0, now in bucket t0+3: due, and due again right after this firing
    state = interval_due(1, t0, t0 + timedelta(seconds=3.5))
    assert state.is_due and state.next == 0
    # one bucket behind: this firing catches up; the next check waits for the next bucket
    state = interval_due(1, t0, t0 + timedelta(seconds=1.25))
    assert state.is_due and abs(state.next - 0.75) < 1e-6
