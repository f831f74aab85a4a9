"""Notifications queue: in-app notifications, reminders and optional webhooks."""

from __future__ import annotations

from tasks.jobs.config import QueueName
from tasks.jobs.errors import PermanentJobError, WebhookNotAllowedError
from tasks.services import notifications
from tasks.worker.job import JobContext
from tasks.worker.registry import processor


def _check_webhook(data: dict) -> None:
    """At enqueue: a webhook host outside ``NOTIFY_WEBHOOK_HOSTS`` is a ``JobInputError``."""
    if data.get("webhook_url") is not None:
        notifications.check_webhook_url(data["webhook_url"])


@processor(QueueName.NOTIFICATIONS, "notify-user", check_data=_check_webhook)
def notify_user(job: JobContext, user_id: int | None, message: str, kind: str = "notice",
                webhook_url: str | None = None) -> dict:
    """Store a notification; POST it to ``webhook_url`` too when given (timeouts retried).

    The host is checked again here: the allow-list may have changed since the
    job was enqueued (or the row was written another way); refused for good.
    """
    if webhook_url is not None:
        try:
            notifications.check_webhook_url(webhook_url)
        except WebhookNotAllowedError as exc:
            raise PermanentJobError(str(exc)) from None
    stored = notifications.store(job.id, user_id, message, kind)
    status = None
    if webhook_url:
        try:
            status = notifications.post_webhook(
                webhook_url, {"job_id": job.id, "user_id": user_id, "kind": kind,
                              "message": message})
        except WebhookNotAllowedError as exc:  # a redirect
            raise PermanentJobError(str(exc)) from None
        stored.webhook_status = status
        stored.save(update_fields=["webhook_status"])
        job.log(f"webhook {webhook_url} answered {status}")
    return {"notification_id": stored.pk, "webhook_status": status}


@processor(QueueName.NOTIFICATIONS, "send-reminder")
def send_reminder(job: JobContext, message: str, user_id: int | None = None) -> dict:
    stored = notifications.store(job.id, user_id, message, kind="reminder")
    return {"notification_id": stored.pk}
