"""Notifications queue: in-app notifications, reminders and optional webhooks."""

from __future__ import annotations

from tasks.jobs.config import QueueName
from tasks.services import notifications
from tasks.worker.job import JobContext
from tasks.worker.registry import processor


@processor(QueueName.NOTIFICATIONS, "notify-user")
def notify_user(job: JobContext, user_id: int | None, message: str, kind: str = "notice",
                webhook_url: str | None = None) -> dict:
    """Store a notification; POST it to ``webhook_url`` too when given (timeouts retried)."""
    stored = notifications.store(job.id, user_id, message, kind)
    status = None
    if webhook_url:
        status = notifications.post_webhook(
            webhook_url, {"job_id": job.id, "user_id": user_id, "kind": kind, "message": message}
        )
        stored.webhook_status = status
        stored.save(update_fields=["webhook_status"])
        job.log(f"webhook {webhook_url} answered {status}")
    return {"notification_id": stored.pk, "webhook_status": status}


@processor(QueueName.NOTIFICATIONS, "send-reminder")
def send_reminder(job: JobContext, message: str, user_id: int | None = None) -> dict:
    stored = notifications.store(job.id, user_id, message, kind="reminder")
    return {"notification_id": stored.pk}
