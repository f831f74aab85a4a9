from django.db import models


class Execution(models.Model):
    """One row per time a test processor's body ran: counts executions per key."""

    key = models.CharField(max_length=255)
    job_id = models.CharField(max_length=255)
    attempt = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    worker_pid = models.PositiveIntegerField(default=0)
