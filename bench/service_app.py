"""The service's Celery app plus one no-op processor, for ``bench/drain.py``.

Worker: ``celery -A bench.service_app worker -Q analytics -c 2 -P prefork
--without-mingle --without-gossip -l WARNING``. The processor does one Redis
INCR on ``BENCH_COUNTER_KEY`` (server from ``BENCH_COUNTER_URL``) so the
benchmark can watch progress without touching the database.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
django.setup()

from bench import profiling  # noqa: E402
from intelgraph.celery import app  # noqa: E402
from tasks.config import QueueName  # noqa: E402
from tasks.context import JobContext  # noqa: E402
from tasks.registry import processor  # noqa: E402

profiling.install("service")

COUNTER_KEY = "bench:counter"
_counter = None


def counter_client():
    """A Redis client on ``BENCH_COUNTER_URL``, created on first use (per process)."""
    global _counter
    if _counter is None:
        import redis

        _counter = redis.Redis.from_url(os.environ["BENCH_COUNTER_URL"])
    return _counter


@processor(QueueName.ANALYTICS, "bench-noop")
def bench_noop(job: JobContext) -> None:
    counter_client().incr(COUNTER_KEY)


__all__ = ["app", "bench_noop", "COUNTER_KEY"]
