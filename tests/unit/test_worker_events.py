"""A received job reaches its pool process before its task events are published.

The event loop is kombu's real ``Hub``; the pool is a double that, like
Celery's prefork ``AsynPool``, writes a job from its outbound buffer when the
child's pipe polls writable. What the fast path relies on upstream is checked
against the real Celery classes at the end, and on a real worker in
``tests/integration/test_fastpath.py``.
"""

from __future__ import annotations

import os
from collections import deque
from types import SimpleNamespace

import pytest
from kombu.asynchronous import Hub
from vine import promise

from tasks.fastpath import events

TURNS = 3


@pytest.fixture
def loop():
    """A real event loop, a pipe standing for a child's inqueue, and what happened in order."""
    hub = Hub()
    read_fd, write_fd = os.pipe()
    hub.add_reader(read_fd, lambda: None)
    hub.call_repeatedly(0.01, lambda: None)  # short poll timeouts when nothing is writable
    outbound: deque = deque()
    order: list[str] = []

    def write_job() -> None:  # AsynPool's schedule_writes, reduced to what matters here
        if outbound:
            order.append(f"write {outbound.popleft()}")
        hub.remove_writer(write_fd)

    consumer = SimpleNamespace(
        hub=hub,
        pool=SimpleNamespace(_pool=SimpleNamespace(outbound_buffer=outbound)),
        event_dispatcher=SimpleNamespace(on_send_buffered=None),
        _flush_events_promise=promise(lambda: order.append("flush events")),
    )
    # What Celery's Events step passes to the dispatcher: flush on the next turn.
    consumer.event_dispatcher.on_send_buffered = lambda: hub.call_soon(
        consumer._flush_events_promise
    )

    def receive(job: str, *, writable: bool = True) -> None:
        """A job is received: into the outbound buffer, its task-received event buffered."""
        outbound.append(job)
        if writable:
            hub.add_writer(write_fd, write_job)
        consumer.event_dispatcher.on_send_buffered()

    def run(turns: int = TURNS) -> list[str]:
        turn = hub.create_loop()
        for _ in range(turns):
            next(turn)
        return order

    yield SimpleNamespace(consumer=consumer, receive=receive, run=run, outbound=outbound)
    hub.close()
    os.close(read_fd)
    os.close(write_fd)


def test_given_celerys_default_the_events_are_published_before_the_job_is_written(loop):
    loop.receive("job-1")

    assert loop.run() == ["flush events", "write job-1"]


def test_the_job_is_written_to_the_pool_before_its_events_are_published(loop):
    assert events.problem(loop.consumer) is None
    events.install(loop.consumer)

    loop.receive("job-1")

    assert loop.run() == ["write job-1", "flush events"]


def test_a_job_that_cannot_be_written_yet_holds_the_events_for_one_turn_only(loop):
    assert events.problem(loop.consumer) is None
    events.install(loop.consumer)

    loop.receive("job-1", writable=False)  # e.g. -O fair with every child busy

    assert loop.run() == ["flush events"]
    assert list(loop.outbound) == ["job-1"]


def test_every_flush_is_held_at_most_one_turn(loop):
    assert events.problem(loop.consumer) is None
    events.install(loop.consumer)
    loop.receive("job-1", writable=False)
    loop.run()

    loop.receive("job-2")

    assert loop.run() == ["flush events", "write job-1", "flush events"]


@pytest.mark.parametrize(
    "change, why",
    [
        ({"_flush_events_promise": None}, "_flush_events_promise"),  # Celery flushes otherwise
        ({"pool": SimpleNamespace(_pool=SimpleNamespace())}, "outbound_buffer"),  # billiard changed
    ],
)
def test_a_consumer_unlike_the_assumed_one_is_a_problem_named(loop, change, why):
    consumer = SimpleNamespace(**{**vars(loop.consumer), **change})
    if change.get("_flush_events_promise", 0) is None:
        del consumer._flush_events_promise

    assert why in events.problem(consumer)


def test_the_real_celery_has_what_the_fast_path_relies_on(monkeypatch):
    from celery.worker.consumer.consumer import Consumer

    assert events.PATH.mismatch() is None
    monkeypatch.delattr(Consumer, "_flush_events")
    assert "_flush_events is gone" in events.PATH.mismatch()
