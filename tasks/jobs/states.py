"""A job's states and the lists of them that queries, counts and retention use."""

from __future__ import annotations

from django.db import models


class JobState(models.TextChoices):
    WAITING = "waiting", "Waiting"
    #: A flow's parent: it starts when its children have completed (BullMQ's name).
    WAITING_CHILDREN = "waiting-children", "Waiting for children"
    DELAYED = "delayed", "Delayed"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


#: Every state, in the order counts and listings show them.
ALL_STATES: tuple[str, ...] = tuple(state.value for state in JobState)

#: States a job does not leave by itself: it ran out, or an operator ended it.
FINISHED_STATES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)

#: The states ``clean`` accepts, and the column that dates a job in each of them.
CLEANABLE_SINCE = {
    JobState.COMPLETED: "finished_at",
    JobState.FAILED: "finished_at",
    JobState.CANCELLED: "finished_at",
    JobState.WAITING: "created_at",
    JobState.DELAYED: "created_at",
}
