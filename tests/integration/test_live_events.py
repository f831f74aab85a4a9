"""Live job events on a real worker: Django signals per state change, at least once.

The stream runs in the test process (as in the web process); jobs run on the
shared worker through the real broker. One test turns the broker's event
channel off (the stream reads the job table only) and still gets every
change; another slows the table reads to once a minute, so only the workers'
task events can bring the changes in time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import current_app

from tasks.jobs import signals
from tasks.operate.actions import cancel_job
from tasks.operate.live import LiveStream
from tasks.queues import QueueName, add_job


class Recorder:
    """Every signal received, per job id, in order (receivers run in the stream's thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, list[tuple[str, dict]]] = defaultdict(list)

    def receiver(self, name: str):
        def receive(sender, signal, job_id: str, **fields) -> None:
            with self.lock:
                self.seen[job_id].append((name, fields))
        return receive

    def names(self, job_id: str) -> list[str]:
        with self.lock:
            return [name for name, _ in self.seen[job_id]]

    def wait(self, job_id: str, last: str, timeout: float = 30.0) -> list[str]:
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            if last in self.names(job_id):
                return self.names(job_id)
            time.sleep(0.05)
        raise AssertionError(f"{job_id}: no {last!r} within {timeout} s; got {self.names(job_id)}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    receivers = [(signal, rec.receiver(name)) for name, signal in signals.SIGNALS.items()]
    for signal, receive in receivers:
        signal.connect(receive, weak=False)
    yield rec
    for signal, receive in receivers:
        signal.disconnect(receive)


def _stream(**options) -> LiveStream:
    stream = LiveStream(current_app, **options).start()
    if stream.listen:
        # Subscribed once something came through (the worker's heartbeats, every 2 s).
        assert stream.heard.wait(15), "the task-event listener heard nothing from the broker"
    return stream


@pytest.mark.parametrize("listen", [True, False], ids=["with-task-events", "table-only"])
def test_a_signal_for_every_state_change(service, recorder, listen):
    stream = _stream(tick_s=0.3, listen=listen)
    try:
        done = add_job(QueueName.DATA_PROCESSING, "add", {"x": 2, "y": 3})
        flaky = add_job(QueueName.DATA_PROCESSING, "flaky", {"key": f"live-{listen}"},
                        attempts=2, backoff={"type": "fixed", "delay": 300})
        doomed = add_job(QueueName.DATA_PROCESSING, "always-fails", {"key": f"live-{listen}"},
                         attempts=1)
        steps = add_job(QueueName.ANALYTICS, "reports-progress", {"key": "p", "pause": 0.8})
        later = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "never"},
                        delay=timedelta(hours=1))

        assert recorder.wait(done, "completed") == ["added", "active", "completed"]
        assert dict(recorder.seen[done])["completed"]["result"] == 5
        assert recorder.wait(flaky, "completed") == [
            "added", "active", "retrying", "active", "completed"]
        retrying = dict(recorder.seen[flaky])["retrying"]
        assert retrying["attempts_made"] == 1 and "attempt 1" in retrying["error"]["error"]
        assert recorder.wait(doomed, "failed") == ["added", "active", "failed"]
        assert dict(recorder.seen[doomed])["failed"]["error"]["error"].startswith("ConnectionError")
        progress = recorder.wait(steps, "completed")
        assert progress[:2] == ["added", "active"] and progress[-1] == "completed"
        values = [f["progress"] for name, f in recorder.seen[steps] if name == "progress"]
        # Four reports 0.8 s apart, read every 0.3 s: each one seen, in order.
        assert values == [25, 50, 75, 100] or values == [25, 50, 75], values
        assert recorder.wait(later, "added") == ["added"]
        cancel_job(later)
        assert recorder.wait(later, "cancelled") == ["added", "cancelled"]
    finally:
        stream.stop()


def test_task_events_bring_changes_before_the_next_table_read(service, recorder):
    # Table reads once a minute: the job's events can only come this soon through the
    # workers' task events on the broker, which wake the stream up.
    stream = _stream(tick_s=60.0, listen=True)
    try:
        job_id = add_job(QueueName.DATA_PROCESSING, "add", {"x": 1})
        assert recorder.wait(job_id, "completed", timeout=20) == ["added", "active", "completed"]
    finally:
        stream.stop()


def test_the_dashboard_stream_sends_events_to_those_who_may_view(db, client, monkeypatch):
    from tasks.jobs import permissions
    from tasks.operate.dashboard import stream as dashboard_stream
    from tasks.operate.live import JobEvent
    from tests.integration.helpers import staff_user

    live = LiveStream(current_app, listen=False)  # not started: the test delivers by hand
    monkeypatch.setattr(dashboard_stream, "live_stream", lambda: live)
    assert client.get("/queues/events").status_code == 302  # to the login page
    client.force_login(staff_user("viewer", permissions.VIEW))
    assert client.get("/queues/events?queue=nope").status_code == 400
    response = client.get("/queues/events?job=j2")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    assert b"event: hello" in next(chunks)  # subscribed from here on
    live.deliver(JobEvent("active", "j1", "analytics", "n", "active", 1, 0))
    live.deliver(JobEvent("completed", "j2", "analytics", "n", "completed", 1, 100,
                          result={"secret": "kept off the stream"}))
    chunk = next(chunks).decode()
    assert chunk.startswith("event: job\ndata: ") and '"job_id": "j2"' in chunk
    assert '"event": "completed"' in chunk and "secret" not in chunk and "j1" not in chunk
    response.close()
    assert live.subscribers == {}
