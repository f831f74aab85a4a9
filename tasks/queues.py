"""The public job API in one import.

    from tasks.queues import QueueName, JobPriority, add_job, add_repeatable_job, queue_registry
"""

from tasks.api import add_bulk, add_job
from tasks.config import QUEUE_PRESETS, Backoff, JobPriority, QueueName, QueuePreset
from tasks.context import JobContext
from tasks.queue_api import Queue, QueueRegistry, queue_registry
from tasks.registry import processor
from tasks.schedules import add_repeatable_job

__all__ = [
    "QUEUE_PRESETS",
    "Backoff",
    "JobContext",
    "JobPriority",
    "Queue",
    "QueueName",
    "QueuePreset",
    "QueueRegistry",
    "add_bulk",
    "add_job",
    "add_repeatable_job",
    "processor",
    "queue_registry",
]
