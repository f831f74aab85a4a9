"""The service's Celery app plus the benchmark processors on the analytics queue.

Worker: ``celery -A bench.service_app worker -Q analytics …``. Each processor
calls the same body as its plain-Celery twin in ``bench/plain_app.py``
(``bench/instrument/probes.py``). Like the plain app, it imports only
``bench.instrument`` from the benchmark, never its driver.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
django.setup()

from bench.instrument import probes, profiling, steps  # noqa: E402
from intelgraph.celery import app  # noqa: E402
from tasks.jobs.config import QueueName  # noqa: E402
from tasks.worker.job import JobContext  # noqa: E402
from tasks.worker.registry import processor  # noqa: E402

profiling.install("service")
steps.install("service")


@processor(QueueName.ANALYTICS, "bench-noop")
def bench_noop(job: JobContext) -> None:
    probes.noop()


@processor(QueueName.ANALYTICS, "bench-noop-batch", batch=100)
def bench_noop_batch(job: JobContext) -> None:
    """The no-op, batched (``tasks.worker.batch``): 100 jobs per broker message."""
    probes.noop()


@processor(QueueName.ANALYTICS, "bench-sleep")
def bench_sleep(job: JobContext, ms: float) -> None:
    probes.sleep(ms)


@processor(QueueName.ANALYTICS, "bench-probe")
def bench_probe(job: JobContext, t0: float, kind: str) -> None:
    probes.probe_started(t0, kind)


probes.connect_postrun(bench_probe.name)

__all__ = ["app", "bench_noop", "bench_noop_batch", "bench_sleep", "bench_probe"]
