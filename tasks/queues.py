"""The public job API in one import.

    from tasks.queues import QueueName, JobPriority, add_job, add_repeatable_job, queue_registry
"""

from tasks.enqueue.api import add_bulk, add_job
from tasks.enqueue.flows import Flow, add_flow
from tasks.jobs.config import QUEUE_PRESETS, Backoff, JobPriority, QueueName, QueuePreset
from tasks.jobs.signals import (
    job_active,
    job_added,
    job_cancelled,
    job_completed,
    job_failed,
    job_progress,
    job_retrying,
)
from tasks.operate.live import live_stream
from tasks.operate.queue import Queue, QueueRegistry, get_job, queue_registry
from tasks.upkeep.schedules import add_repeatable_job
from tasks.worker.job import JobContext
from tasks.worker.registry import processor

__all__ = [
    "QUEUE_PRESETS",
    "Backoff",
    "JobContext",
    "JobPriority",
    "Queue",
    "QueueName",
    "QueuePreset",
    "QueueRegistry",
    "Flow",
    "add_bulk",
    "add_flow",
    "add_job",
    "add_repeatable_job",
    "get_job",
    "job_active",
    "job_added",
    "job_cancelled",
    "job_completed",
    "job_failed",
    "job_progress",
    "job_retrying",
    "live_stream",
    "processor",
    "queue_registry",
]
