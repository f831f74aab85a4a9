"""Successive views of a job row become events in their order (tasks/operate/live.py).

Pure logic: no database, no broker. The integration test (tests/integration/
test_live_events.py) runs the same on real workers.
"""

from __future__ import annotations

import logging
import queue
from datetime import UTC, datetime, timedelta

import pytest

from tasks.jobs import signals
from tasks.operate.live import Changes, JobEvent, LiveStream

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def row(state: str, attempts: int = 0, progress=0, created=T0, started=None, errors=None,
        result=None, job_id: str = "j1") -> dict:
    return {"id": job_id, "queue": "analytics", "name": "record-analytics", "state": state,
            "attempts_made": attempts, "progress": progress, "created_at": created,
            "started_at": started, "result": result, "errors": errors or []}


def names(changes: Changes, *rows: dict) -> list[str]:
    return [event.event for r in rows for event in changes.events_for(r)]


def test_each_state_seen_gives_its_event_once():
    changes = Changes(since=T0 - timedelta(seconds=5))
    assert names(changes, row("waiting"), row("waiting")) == ["added"]
    assert names(changes, row("active", 1, started=T0), row("active", 1, started=T0)) == ["active"]
    assert names(changes, row("active", 1, 50, started=T0)) == ["progress"]
    assert names(changes, row("active", 1, 50, started=T0)) == []
    done = changes.events_for(row("completed", 1, 100, started=T0, result={"ok": 1}))
    assert [(e.event, e.result) for e in done] == [("completed", {"ok": 1})]
    assert names(changes, row("completed", 1, 100, started=T0)) == []


def test_changes_between_two_passes_are_not_skipped():
    changes = Changes(since=T0 - timedelta(seconds=5))
    # Added, failed once, retried and completed, all before the first pass saw it.
    err = {"type": "TransientJobError", "message": "not yet"}
    events = changes.events_for(row("completed", 2, started=T0, errors=[err]))
    assert [(e.event, e.attempts_made) for e in events] == [
        ("added", 2), ("active", 1), ("retrying", 1), ("active", 2), ("completed", 2)]
    assert events[2].error == err


def test_a_retry_seen_as_it_happens():
    changes = Changes(since=T0 - timedelta(seconds=5))
    err = {"message": "boom"}
    assert names(changes, row("waiting"), row("active", 1, started=T0)) == ["added", "active"]
    assert names(changes, row("delayed", 1, errors=[err])) == ["retrying"]
    # The second attempt starts and fails for good: active again, then failed.
    failed = changes.events_for(row("failed", 2, started=T0, errors=[err, err]))
    assert [e.event for e in failed] == ["active", "failed"]
    assert failed[-1].error == err


def test_a_retry_by_hand_starts_over():
    changes = Changes(since=T0 - timedelta(seconds=5))
    names(changes, row("failed", 3, started=T0, errors=[{}, {}, {}]))
    assert names(changes, row("waiting", 0, errors=[{}, {}, {}])) == []
    assert names(changes, row("active", 1, started=T0)) == ["active"]
    assert names(changes, row("completed", 1, started=T0)) == ["completed"]


def test_an_older_job_first_seen_is_not_added_and_its_past_not_replayed():
    changes = Changes(since=T0)
    old = T0 - timedelta(hours=1)
    assert names(changes, row("active", 3, created=old, started=T0)) == ["active"]


def test_cancelled_while_waiting_never_was_active():
    changes = Changes(since=T0 - timedelta(seconds=5))
    assert names(changes, row("delayed"), row("cancelled")) == ["added", "cancelled"]


def test_forgotten_jobs_are_delivered_again_not_lost():
    changes = Changes(since=T0 - timedelta(seconds=5), capacity=2)
    for job_id in ("a", "b", "c"):
        names(changes, row("completed", 1, started=T0, job_id=job_id))
    assert list(changes.views) == ["b", "c"]
    # "a" is seen again: delivered twice (at least once), never skipped.
    assert names(changes, row("completed", 1, started=T0, job_id="a")) == [
        "added", "active", "completed"]


def test_a_failing_receiver_is_logged_and_the_others_still_run(caplog):
    stream = LiveStream(app=None, tick_s=1.0, listen=False)
    got = []

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    def fine(sender, **kwargs):
        got.append(kwargs)

    signals.job_completed.connect(broken)
    signals.job_completed.connect(fine)
    inbox = stream.subscribe()
    try:
        with caplog.at_level(logging.ERROR, logger="tasks.operate.live"):
            stream.deliver(JobEvent("completed", "j9", "analytics", "n", "completed", 1, 100,
                                    result=7))
    finally:
        signals.job_completed.disconnect(broken)
        signals.job_completed.disconnect(fine)
    assert got == [{"signal": signals.job_completed, "job_id": "j9", "queue": "analytics",
                    "name": "n", "state": "completed", "attempts_made": 1, "progress": 100,
                    "result": 7}]
    assert "receiver bug" in caplog.text and "j9" in caplog.text
    assert inbox.get_nowait().job_id == "j9"


def test_a_subscriber_that_falls_behind_is_told_to_resync(monkeypatch, caplog):
    monkeypatch.setattr("tasks.operate.live.SUBSCRIBER_BACKLOG", 3)
    stream = LiveStream(app=None, tick_s=1.0, listen=False)
    inbox = stream.subscribe()
    with caplog.at_level(logging.WARNING, logger="tasks.operate.live"):
        for n in range(4):
            stream.deliver(JobEvent("added", f"j{n}", "analytics", "n", "waiting", 0, 0))
    assert inbox.get_nowait() is None  # "reload what you show"
    with pytest.raises(queue.Empty):
        inbox.get_nowait()
    assert "resync" in caplog.text
