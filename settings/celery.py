"""Celery configuration (read by ``intelgraph/celery.py`` with the ``CELERY_`` prefix).

Reliability comes from configuration: JSON only, late acks with
reject-on-worker-lost, prefetch 1 so priority holds under backlog, time
limits, and short broker timeouts so enqueueing never hangs.
"""

from kombu import Exchange, Queue

from settings.environment import broker_url, env
from tasks.jobs.config import PRIORITY_LEVELS, QueueName

CELERY_BROKER_URL = broker_url()
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_EVENT_SERIALIZER = "json"
CELERY_TIMEZONE = env.str("TIME_ZONE", default="UTC")
CELERY_ENABLE_UTC = True

# The Job table is the record of every job: Celery's result API reads it
# (tasks/integrations/results.py); nothing is written for it on a job's run.
CELERY_RESULT_BACKEND = "tasks.integrations.results:JobResultBackend"
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = None  # no celery.backend_cleanup task in beat

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env.int("QUEUE_WORKER_CONCURRENCY", default=5)
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TASK_TRACK_STARTED = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up closes every database connection around every task
# unless this is set (CONN_MAX_AGE alone does not stop it): measured ~3 ms per
# job on SQLite. Reuse connections for up to 1000 tasks; ``tasks.worker.bootstep``
# still drops unusable or obsolete ones before each task, like Django does per request.
CELERY_DB_REUSE_MAX = 1000

# Queues are declared here and nowhere else; a task routed anywhere else fails.
_EXCHANGE = Exchange("intelgraph", type="direct")
CELERY_TASK_QUEUES = tuple(
    Queue(
        queue.value,
        _EXCHANGE,
        routing_key=queue.value,
        durable=True,
        queue_arguments={"x-max-priority": PRIORITY_LEVELS},
    )
    for queue in QueueName
)
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_DEFAULT_QUEUE = QueueName.ANALYTICS.value
CELERY_TASK_DEFAULT_EXCHANGE = "intelgraph"
CELERY_TASK_DEFAULT_ROUTING_KEY = QueueName.ANALYTICS.value
CELERY_TASK_ROUTES = ("tasks.jobs.routing.route_task",)
CELERY_TASK_DEFAULT_PRIORITY = None
CELERY_TASK_QUEUE_MAX_PRIORITY = PRIORITY_LEVELS

# Redis: one list per priority level (0..4, lower first), and fail fast.
BROKER_VISIBILITY_TIMEOUT_S = env.int("BROKER_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "priority_steps": list(range(PRIORITY_LEVELS)),
    "sep": ":",
    "queue_order_strategy": "priority",
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_S,
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    "max_retries": 1,
    "confirm_publish": True,  # RabbitMQ publisher confirms
}
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_HEARTBEAT = 10
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}

CELERY_BEAT_SCHEDULER = "tasks.upkeep.scheduler:ExactlyOnceScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("BEAT_MAX_LOOP_INTERVAL", default=5)
# Each firing's last run is written to the schedule's row at once (one UPDATE), not every
# 3 minutes (Celery's default): a beat killed with -9 and restarted then catches up from
# its real last firing. With a row minutes stale, the missed firings fell outside the
# catch-up window (``tasks.upkeep.scheduler.MAX_CATCH_UP_S``) and were skipped (issue 18).
CELERY_BEAT_SYNC_EVERY = 1
