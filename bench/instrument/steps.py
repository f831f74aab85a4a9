"""The worker-side stamps of ``bench/steps.py``, installed by both benchmark apps.

With ``BENCH_STEPS_DIR`` in the environment, ``install()`` wraps a few kombu,
billiard and Celery internals to stamp ``time.time()`` at fixed points of a
job's way through the worker (main process and pool child) and writes them as
JSON lines, one file per process, into that directory; ``bench/steps.py``
joins and reports them. Tied to kombu 5.7 and Celery 5.7; the wrappers cost a
few µs per step. Without ``BENCH_STEPS_DIR`` nothing is installed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

#: (stamp, label) in the order a job passes them; a step is the time from the previous stamp.
STEPS = (
    ("sent", "caller: add_job/.delay() until the LPUSH is sent"),
    ("read", "server and wake-up: until the worker reads the BRPOP reply"),
    ("unacked0", "kombu: decode the message"),
    ("unacked1", "kombu: unacked bookkeeping (MULTI ZADD HSET EXEC)"),
    ("received", "Celery: strategy, Request (task_received)"),
    ("applied", "Celery: task_reserved, pool.apply_async"),
    ("written", "event loop turn until the job is written to a child's pipe"),
    ("accepted", "child: wake up, read and unpickle the job"),
    ("prerun", "child: trace set-up until task_prerun"),
    ("body", "child: task_prerun until the body starts (service: the claim)"),
)


def _stamp(record: dict, key: str, value: float | None = None) -> None:
    record[key] = time.time() if value is None else value


def install(app_name: str) -> None:
    """Stamp the worker's steps when ``BENCH_STEPS_DIR`` is set (see the module docstring)."""
    directory = os.environ.get("BENCH_STEPS_DIR")
    if not directory:
        return
    import billiard.pool
    import kombu.transport.redis as kombu_redis
    from celery import signals
    from celery.events.dispatcher import EventDispatcher
    from celery.worker.request import Request

    from bench.instrument import probes

    jobs: dict[str, dict] = {}  # task id -> stamps (main process, or one child)
    last: dict[str, float] = {}  # stamps taken before the task id is known
    writes: list[float] = []
    flushes: list[list[float]] = []
    current: dict[str, str] = {}

    def wrap(owner, name, before=None, after=None):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if before:
                before(*args, **kwargs)
            try:
                return original(*args, **kwargs)
            finally:
                if after:
                    after(*args, **kwargs)

        setattr(owner, name, wrapper)

    wrap(kombu_redis.Channel, "_brpop_read", before=lambda *a, **k: _stamp(last, "read"))
    wrap(kombu_redis.QoS, "append", before=lambda *a, **k: _stamp(last, "unacked0"),
         after=lambda *a, **k: _stamp(last, "unacked1"))  # fmt: skip

    def applied(pool, func, args=(), *rest, **kwargs):
        _stamp(jobs.setdefault(args[1], {}), "applied")  # args[1]: the task id

    wrap(billiard.pool.Pool, "apply_async", after=applied)

    def accepted(request, pid, time_accepted):  # the child's monotonic stamp, as Celery converts it
        _stamp(jobs.setdefault(request.id, {}), "accepted",
               time.time() - (time.monotonic() - time_accepted))  # fmt: skip

    wrap(Request, "on_accepted", before=accepted)
    flush = EventDispatcher.flush

    def timed_flush(self, *args, **kwargs):
        started = time.time()
        try:
            return flush(self, *args, **kwargs)
        finally:
            flushes.append([started, time.time()])

    EventDispatcher.flush = timed_flush
    send_offset = billiard.pool._get_send_offset

    def timed_send_offset(connection):
        send = send_offset(connection)

        def timed(buf, offset):
            writes.append(time.time())
            return send(buf, offset)

        return timed

    billiard.pool._get_send_offset = timed_send_offset

    @signals.task_received.connect(weak=False)
    def received(request=None, **_: object) -> None:
        record = jobs.setdefault(request.id, {})
        record.update(last)
        _stamp(record, "received")

    @signals.task_prerun.connect(weak=False)
    def prerun(task_id=None, **_: object) -> None:
        current["id"] = task_id
        _stamp(jobs.setdefault(task_id, {}), "prerun")

    started = probes.probe_started

    def probe_started(t0: float, kind: str) -> None:
        record = jobs.setdefault(current.get("id", ""), {})
        _stamp(record, "body")
        record["t0"] = t0
        started(t0, kind)

    probes.probe_started = probe_started

    def dump(**_: object) -> None:
        path = Path(directory) / f"{app_name}-{os.getpid()}.jsonl"
        with open(path, "a") as out:
            out.write(json.dumps({"jobs": jobs, "writes": writes, "flushes": flushes}) + "\n")
        jobs.clear()
        writes.clear()
        flushes.clear()

    signals.task_postrun.connect(dump, weak=False)  # children: after each job
    signals.worker_shutdown.connect(dump, weak=False)  # main process: once
