"""System checks for the known Celery traps (``manage.py check``).

Each check names the setting to change. Broker safety (password, eviction
policy) also runs when a worker starts (``tasks.worker.bootstep``): a warning in
development, a refusal where ``JOB_STRICT_BROKER_CHECKS`` is on (production).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from tasks.jobs.brokers import BrokerKind, broker_kind
from tasks.jobs.config import PRIORITY_LEVELS, QUEUE_PRESETS, QueueName
from tasks.worker.broker_safety import broker_safety_problems


def _is_redis(url: str) -> bool:
    return broker_kind(url) is BrokerKind.REDIS


@register(Tags.compatibility)
def check_time_limits(app_configs=None, **kwargs) -> list:
    """A job running past the visibility timeout is handed to a second worker (Redis)."""
    if not _is_redis(current_app.conf.broker_url or ""):
        return []
    timeout = current_app.conf.broker_transport_options.get("visibility_timeout", 3600)
    problems = []
    for queue, preset in QUEUE_PRESETS.items():
        if preset.time_limit_s >= timeout:
            problems.append(Error(
                f"queue {queue.value}: hard time limit {preset.time_limit_s}s is not below the "
                f"Redis visibility timeout {timeout}s; a running job would be delivered again",
                hint="Raise BROKER_VISIBILITY_TIMEOUT or lower the queue preset's time_limit_s.",
                id="tasks.E001",
            ))
    return problems


@register(Tags.compatibility)
def check_acks(app_configs=None, **kwargs) -> list:
    conf = current_app.conf
    if conf.task_acks_late and not conf.task_reject_on_worker_lost:
        return [Error(
            "task_acks_late without task_reject_on_worker_lost: a job whose worker process dies "
            "is acknowledged and lost",
            hint="Set CELERY_TASK_REJECT_ON_WORKER_LOST = True.", id="tasks.E002",
        )]
    if not conf.task_acks_late:
        return [Warning(
            "task_acks_late is off: a job is acknowledged before it runs and lost if the worker "
            "dies", hint="Set CELERY_TASK_ACKS_LATE = True.", id="tasks.W002",
        )]
    return []


@register(Tags.compatibility)
def check_priorities(app_configs=None, **kwargs) -> list:
    conf = current_app.conf
    url = conf.broker_url or ""
    if _is_redis(url):
        options = conf.broker_transport_options
        if options.get("priority_steps") != list(range(PRIORITY_LEVELS)):
            return [Error(
                f"Redis priority_steps {options.get('priority_steps')} do not give one step per "
                f"JobPriority level (need {list(range(PRIORITY_LEVELS))})",
                hint="Set broker_transport_options['priority_steps'].", id="tasks.E003",
            )]
        if options.get("queue_order_strategy") != "priority":
            return [Error("Redis queue_order_strategy must be 'priority'", id="tasks.E003")]
        return []
    problems = []
    for queue in conf.task_queues or ():
        if (queue.queue_arguments or {}).get("x-max-priority") != PRIORITY_LEVELS:
            problems.append(Error(
                f"queue {queue.name} has no x-max-priority={PRIORITY_LEVELS}: RabbitMQ would "
                "ignore job priorities", id="tasks.E003",
            ))
    return problems


def procfile_queues(procfile: Path) -> dict[str, set[str]]:
    """Worker process name → queues its ``-Q`` option consumes."""
    profiles: dict[str, set[str]] = {}
    if not procfile.exists():
        return profiles
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if " worker" not in command:
            continue
        args = shlex.split(command)
        for flag in ("-Q", "--queues"):
            if flag in args:
                profiles[name.strip()] = set(args[args.index(flag) + 1].split(","))
        match = re.search(r"--queues=(\S+)", command)
        if match:
            profiles[name.strip()] = set(match.group(1).split(","))
    return profiles


@register(Tags.compatibility)
def check_queues_consumed(app_configs=None, **kwargs) -> list:
    procfile = Path(settings.BASE_DIR) / "Procfile"
    profiles = procfile_queues(procfile)
    if not profiles:
        return []
    consumed = set().union(*profiles.values())
    declared = {q.name for q in current_app.conf.task_queues or ()}
    problems = [
        Error(f"queue {name} is routed to but no worker profile in the Procfile consumes it",
              hint="Add it to a worker's -Q list.", id="tasks.E004")
        for name in sorted({q.value for q in QueueName} - consumed)
    ]
    problems += [
        Error(f"a worker profile consumes undeclared queue {name}", id="tasks.E004")
        for name in sorted(consumed - declared)
    ]
    return problems


@register(Tags.compatibility)
def check_tasks_are_jobs(app_configs=None, **kwargs) -> list:
    """Every Celery task of the project is a declared processor, so each call is on record.

    A plain ``@shared_task`` would run with no job row, routed nowhere the
    service watches; it is refused here, at start, naming it. Celery's own
    ``celery.*`` tasks are its machinery (workers refuse their messages).
    """
    from tasks.enqueue.task import RecordingTask
    from tasks.worker.batch import BatchTask  # a batched processor's own messages

    return [
        Error(f"Celery task {name!r} is not a declared job: it would run with no job record",
              hint="Declare it with @processor(QueueName.<queue>, '<name>') from tasks.queues "
                   "(or enqueue plain functions through django.tasks).",
              id="tasks.E007")
        for name, task in sorted(current_app.tasks.items())
        if not name.startswith("celery.") and not isinstance(task, RecordingTask | BatchTask)
    ]


@register(Tags.compatibility)
def check_beat_timezone(app_configs=None, **kwargs) -> list:
    if current_app.conf.timezone != settings.TIME_ZONE:
        return [Error(
            f"Celery beat timezone {current_app.conf.timezone!r} differs from TIME_ZONE "
            f"{settings.TIME_ZONE!r}: schedules would fire at unexpected hours",
            hint="Set CELERY_TIMEZONE = TIME_ZONE.", id="tasks.E005",
        )]
    return []


@register(Tags.security, deploy=True)
def check_broker_safety(app_configs=None, **kwargs) -> list:
    strict = getattr(settings, "JOB_STRICT_BROKER_CHECKS", False)
    kind = Error if strict else Warning
    return [kind(problem, id="tasks.E006" if strict else "tasks.W006")
            for problem in broker_safety_problems()]
