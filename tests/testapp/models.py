from django.db import models


class Execution(models.Model):
    """One row per time a test processor's body ran: counts executions per key."""

    key = models.CharField(max_length=255)
    job_id = models.CharField(max_length=255)
    attempt = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    worker_pid = models.PositiveIntegerField(default=0)


class IdempotencyKey(models.Model):
    """Claimed before a side effect, in the same transaction: a rerun finds it and skips."""

    job_id = models.CharField(max_length=255, unique=True)


class Effect(models.Model):
    """The side effect a soak job performs (deliberately not unique: the checker counts)."""

    job_id = models.CharField(max_length=255, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
