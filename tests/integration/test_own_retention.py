"""BullMQ's remove_on_complete / remove_on_fail per job, applied by retention beside the queue's preset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.jobs.errors import InvalidKeepError
from tasks.models import Job
from tasks.operate import figures
from tasks.queues import QueueName, add_bulk, add_job
from tasks.upkeep.retention import enforce_retention


def finished(job_id: str, state: str = "completed", ago: timedelta = timedelta(0)) -> None:
    """The job as if it ran and finished ``ago``."""
    now = timezone.now() - ago
    Job.objects.filter(pk=job_id).update(state=state, started_at=now, finished_at=now)


def _add(**options) -> str:
    return add_job(QueueName.ANALYTICS, "record-analytics", {"key": "k"},
                   delay=timedelta(hours=1), **options)


def test_each_rule_keeps_or_removes_its_own_job(db):
    removed = _add(remove_on_complete=True)
    kept_for_ever = _add(remove_on_complete=False)
    by_preset = _add()
    counted = [_add(remove_on_complete=2) for _ in range(4)]
    failed_young = _add(remove_on_fail={"age": 60_000})
    failed_old = _add(remove_on_fail={"age": 60_000})
    finished(removed)
    finished(kept_for_ever, ago=timedelta(days=30))  # the preset keeps completed jobs 24 h
    finished(by_preset, ago=timedelta(days=30))
    for n, job_id in enumerate(counted):
        finished(job_id, ago=timedelta(minutes=10 - n))  # the last two are the newest
    finished(failed_young, "failed", ago=timedelta(seconds=10))
    finished(failed_old, "failed", ago=timedelta(minutes=5))

    enforce_retention()

    left = set(Job.objects.values_list("pk", flat=True))
    assert left == {kept_for_ever, *counted[2:], failed_young}
    assert figures.totals()[("analytics", "record-analytics")].completed == 7  # all counted


def test_add_bulk_takes_the_same_options(db):
    ids = add_bulk([{"queue": "analytics", "name": "record-analytics", "data": {"key": "b"},
                     "delay": timedelta(hours=1), "remove_on_complete": True},
                    {"queue": "analytics", "name": "record-analytics", "data": {"key": "c"},
                     "delay": timedelta(hours=1)}])
    assert Job.objects.get(pk=ids[0]).keep == {"completed": {"remove": True}}
    assert Job.objects.get(pk=ids[1]).keep is None


@pytest.mark.parametrize("value", [-1, 1.5, "yes", {"age": -5}, {"colour": 1}, {},
                                   timedelta(days=-1), {"age": float("nan")}])
def test_a_bad_rule_is_refused_at_the_call(db, value):
    with pytest.raises(InvalidKeepError, match="remove_on_complete"):
        _add(remove_on_complete=value)
    assert not Job.objects.exists()
