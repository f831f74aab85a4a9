"""Work scheduled after pool writes runs once a received job has reached its pool process.

The event loop is kombu's real ``Hub``; the pool is a double that, like
Celery's prefork ``AsynPool``, writes a job from its outbound buffer when the
child's pipe polls writable. ``after_pool_writes`` is what the
``unacked-after-pool-write`` fast path schedules kombu's bookkeeping with.
"""

from __future__ import annotations

import os
from collections import deque
from types import SimpleNamespace

import pytest
from kombu.asynchronous import Hub

from tasks.fastpath.pool_writes import after_pool_writes, outbound_problem

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

    def work() -> None:
        order.append("work")

    def receive(job: str, *, writable: bool = True, deferred: bool = True) -> None:
        """A job is received into the outbound buffer, and work is scheduled for the next turn."""
        outbound.append(job)
        if writable:
            hub.add_writer(write_fd, write_job)
        hub.call_soon(after_pool_writes(hub, outbound, work) if deferred else work)

    def run(turns: int = TURNS) -> list[str]:
        turn = hub.create_loop()
        for _ in range(turns):
            next(turn)
        return order

    yield SimpleNamespace(receive=receive, run=run, outbound=outbound)
    hub.close()
    os.close(read_fd)
    os.close(write_fd)


def test_work_scheduled_the_stock_way_runs_before_the_job_is_written(loop):
    loop.receive("job-1", deferred=False)

    assert loop.run() == ["work", "write job-1"]


def test_the_job_is_written_to_the_pool_before_the_deferred_work_runs(loop):
    loop.receive("job-1")

    assert loop.run() == ["write job-1", "work"]


def test_a_job_that_cannot_be_written_yet_holds_the_work_for_one_turn_only(loop):
    loop.receive("job-1", writable=False)  # e.g. -O fair with every child busy

    assert loop.run() == ["work"]
    assert list(loop.outbound) == ["job-1"]


def test_every_run_is_held_at_most_one_turn(loop):
    loop.receive("job-1", writable=False)
    loop.run()

    loop.receive("job-2")

    assert loop.run() == ["work", "write job-1", "work"]


def test_a_pool_without_billiards_outbound_buffer_is_a_problem_named():
    consumer = SimpleNamespace(pool=SimpleNamespace(_pool=SimpleNamespace()))
    assert "outbound_buffer" in outbound_problem(consumer)
