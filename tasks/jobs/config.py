"""Queue names, priorities and per-queue presets: the service's vocabulary.

Pure values with no Django or Celery imports, so settings can use them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class QueueName(str, enum.Enum):
    """The four declared queues. Anything else is refused at the call site."""

    EMAIL = "email"
    NOTIFICATIONS = "notifications"
    DATA_PROCESSING = "data-processing"
    ANALYTICS = "analytics"

    def __str__(self) -> str:
        return self.value


#: The declared queues' names, in declaration order.
QUEUE_NAMES: tuple[str, ...] = tuple(queue.value for queue in QueueName)


class JobPriority(enum.IntEnum):
    """1 runs first. Mapped to each broker's native scale by ``tasks.jobs.routing``."""

    CRITICAL = 1
    HIGH = 2
    NORMAL = 3
    LOW = 4
    BACKGROUND = 5


PRIORITY_LEVELS = len(JobPriority)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before the next attempt.

    ``type`` is ``exponential`` (delay, 2×delay, 4×delay …), ``fixed`` (delay
    every time) or ``custom`` (the task's own strategy). ``delay_ms`` is in
    milliseconds like BullMQ; ``max_delay_ms`` caps exponential growth and
    ``jitter`` (0..1) spreads retries of many jobs that failed together.
    """

    type: str = "exponential"
    delay_ms: int = 2000
    max_delay_ms: int = 60 * 60 * 1000
    jitter: float = 0.0

    def as_dict(self) -> dict:
        return {
            "type": self.type,
            "delay": self.delay_ms,
            "max_delay": self.max_delay_ms,
            "jitter": self.jitter,
        }


@dataclass(frozen=True)
class QueuePreset:
    """Defaults for every job of one queue.

    Retention follows BullMQ's ``removeOnComplete``/``removeOnFail``: finished
    jobs are deleted after an age, completed ones also beyond a count.
    Time limits must stay below the broker's visibility timeout.
    """

    attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    soft_time_limit_s: int = 300
    time_limit_s: int = 360
    keep_completed_s: int = 24 * 3600
    keep_completed_count: int = 1000
    keep_failed_s: int = 7 * 24 * 3600
    keep_cancelled_s: int = 7 * 24 * 3600
    #: Global rate limits across every worker (``"100/min"``): the queue's, and per job
    #: name. The dashboard overrides them at run time (``tasks.enqueue.ratelimits``).
    rate_limit: str | None = None
    job_rate_limits: dict[str, str] = field(default_factory=dict)


QUEUE_PRESETS: dict[QueueName, QueuePreset] = {
    QueueName.EMAIL: QueuePreset(soft_time_limit_s=60, time_limit_s=90),
    QueueName.NOTIFICATIONS: QueuePreset(soft_time_limit_s=60, time_limit_s=90),
    QueueName.DATA_PROCESSING: QueuePreset(
        attempts=3, soft_time_limit_s=1800, time_limit_s=1900
    ),
    QueueName.ANALYTICS: QueuePreset(attempts=2, soft_time_limit_s=900, time_limit_s=960),
}
