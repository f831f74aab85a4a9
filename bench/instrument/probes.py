"""Task bodies shared by both benchmark apps, so each system runs the same work.

Every body talks only to the *counter* Redis database (``BENCH_COUNTER_URL``,
db 0), never to the broker's: the benchmark watches progress there without
touching the job database. Times are ``time.time()`` (one machine, one clock).
"""

from __future__ import annotations

import os
import time

from bench.instrument.keys import COUNTER_KEY, FINISHED_KEY, STARTED_KEY

_client = None


def client():
    """A Redis client on ``BENCH_COUNTER_URL``, created on first use (per process)."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(os.environ["BENCH_COUNTER_URL"])
    return _client


def noop() -> None:
    client().incr(COUNTER_KEY)


def sleep(ms: float) -> None:
    time.sleep(ms / 1000)
    client().incr(COUNTER_KEY)


def probe_started(t0: float, kind: str) -> None:
    """First thing a probe job does: record ``kind t0 now``."""
    client().rpush(STARTED_KEY, f"{kind} {t0!r} {time.time()!r}")


def probe_finished(t0: float, kind: str) -> None:
    """From ``task_postrun``: after the service's completion UPDATE, before the ack."""
    client().rpush(FINISHED_KEY, f"{kind} {t0!r} {time.time()!r}")


def connect_postrun(task_name: str) -> None:
    """Record ``probe_finished`` for every run of ``task_name`` in this worker."""
    from celery.signals import task_postrun

    @task_postrun.connect(weak=False)
    def finished(sender=None, kwargs=None, **_: object) -> None:
        if sender is not None and sender.name == task_name and kwargs:
            probe_finished(kwargs["t0"], kwargs["kind"])
