"""Beat never writes back a field a person edits: an admin's disable always holds.

django-celery-beat's entry reads the schedule row and saves all of it back
after a firing; an admin's change committed in between was overwritten (the
schedule came back on). ``RecordedEntry`` writes beat's own fields alone.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from tasks.queues import QueueName, add_repeatable_job
from tasks.upkeep.scheduler import RecordedEntry


@pytest.fixture
def schedule(transactional_db) -> PeriodicTask:
    return add_repeatable_job(QueueName.ANALYTICS, "hourly-stats", {}, "* * * * *",
                              schedule_name="race")


def admin_disables(pk: int) -> None:
    """What the admin's change form does: read the row, save it whole with ``enabled`` off."""
    task = PeriodicTask.objects.filter(pk=pk).first()
    task.enabled = False
    task.save()


def fired(entry_class, pk: int):
    """Beat's entry after a firing (run count and last run advanced in memory)."""
    return next(entry_class(PeriodicTask.objects.get(pk=pk)))


def _disable_during_the_write_back(entry_class, pk: int, monkeypatch) -> bool:
    """The admin commits its disable right after beat read the row; is it still disabled?"""
    manager = PeriodicTask._default_manager
    entry = fired(entry_class, pk)
    real_get = manager.get

    def get_then_admin_disables(*args, **kwargs):
        row = real_get(*args, **kwargs)
        admin_disables(pk)
        return row

    monkeypatch.setattr(manager, "get", get_then_admin_disables)
    entry.save()
    monkeypatch.undo()
    if entry_class is RecordedEntry:  # it reads nothing: the admin commits just before instead
        admin_disables(pk)
        entry.save()
    return not PeriodicTask.objects.get(pk=pk).enabled


def test_django_celery_beats_entry_loses_a_disable_committed_during_its_write_back(
        schedule, monkeypatch):
    """The bug, shown: this is what the test below would catch."""
    assert not _disable_during_the_write_back(ModelEntry, schedule.pk, monkeypatch)


def test_the_services_entry_keeps_it(schedule, monkeypatch):
    assert _disable_during_the_write_back(RecordedEntry, schedule.pk, monkeypatch)
    assert PeriodicTask.objects.get(pk=schedule.pk).total_run_count == 1  # beat's own field


def _write_back(entry) -> None:
    """Beat's write-backs after a firing, from another thread (its own connection)."""
    try:
        for _ in range(3):
            entry.save()
    finally:
        connection.close()


def test_an_admin_disable_holds_against_concurrent_write_backs_every_time(schedule):
    for round_ in range(60):
        PeriodicTask.objects.filter(pk=schedule.pk).update(enabled=True)
        entry = fired(RecordedEntry, schedule.pk)

        beat = threading.Thread(target=_write_back, args=(entry,))
        beat.start()
        admin_disables(schedule.pk)
        beat.join()
        assert not PeriodicTask.objects.get(pk=schedule.pk).enabled, f"round {round_}"
