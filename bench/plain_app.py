"""A plain Celery app with the service's worker settings and no job records.

No Django. Mirrors ``settings/celery.py``: JSON only, late acks with
reject-on-worker-lost, prefetch 1, task events on, the same Redis transport
options (priority steps 0..4, ``:`` separator, priority order), no result
backend. The tasks ``plain.noop``, ``plain.sleep`` and ``plain.probe`` run the
same bodies (``bench/instrument/probes.py``) as the service's ``analytics.bench-*``
processors, on the queue ``plain``.

Worker: ``celery -A bench.plain_app worker -Q plain -c 2 -P prefork
--without-mingle --without-gossip -l WARNING``.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

from bench.instrument import probes, profiling, steps

profiling.install("plain")
steps.install("plain")

PRIORITY_LEVELS = (
    5  # = tasks.jobs.config.PRIORITY_LEVELS; copied so this module stays independent of the service
)
QUEUE = "plain"

# set_as_current=False: drain.py imports both apps in one process, and the
# service's publishing code uses celery.current_app.
app = Celery("plain", set_as_current=False)
_exchange = Exchange("plain", type="direct")
app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER_URL")
    or os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/1"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    event_serializer="json",
    enable_utc=True,
    result_backend=None,
    task_ignore_result=True,
    result_expires=None,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=False,
    task_track_started=False,
    worker_hijack_root_logger=False,
    task_queues=(
        Queue(
            QUEUE,
            _exchange,
            routing_key=QUEUE,
            durable=True,
            queue_arguments={"x-max-priority": PRIORITY_LEVELS},
        ),
    ),
    task_create_missing_queues=False,
    task_default_queue=QUEUE,
    task_default_exchange="plain",
    task_default_routing_key=QUEUE,
    task_routes={"plain.*": {"queue": QUEUE, "routing_key": QUEUE}},
    task_default_priority=None,
    task_queue_max_priority=PRIORITY_LEVELS,
    broker_transport_options={
        "priority_steps": list(range(PRIORITY_LEVELS)),
        "sep": ":",
        "queue_order_strategy": "priority",
        "visibility_timeout": 3600,
        "socket_connect_timeout": 1,
        "socket_timeout": 5,
        "max_retries": 1,
        "confirm_publish": True,  # RabbitMQ-only, as in the service; ignored by Redis
    },
    broker_connection_timeout=1,
    broker_connection_retry_on_startup=True,
    broker_heartbeat=10,
    task_publish_retry=True,
    task_publish_retry_policy={
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    },
)

# Same time limits as the service's analytics preset (tasks.jobs.config.QUEUE_PRESETS).
LIMITS = {"soft_time_limit": 900, "time_limit": 960}


@app.task(name="plain.noop", **LIMITS)
def noop() -> None:
    probes.noop()


@app.task(name="plain.sleep", **LIMITS)
def sleep(ms: float) -> None:
    probes.sleep(ms)


@app.task(name="plain.probe", **LIMITS)
def probe(t0: float, kind: str) -> None:
    probes.probe_started(t0, kind)


probes.connect_postrun(probe.name)
