"""Email queue: welcome and password-reset emails through Django's email backend."""

from __future__ import annotations

import logging
import smtplib

from tasks.jobs.config import QueueName
from tasks.jobs.errors import PermanentJobError
from tasks.services import email as mail
from tasks.services import notifications
from tasks.worker.job import JobContext
from tasks.worker.registry import processor

logger = logging.getLogger("tasks.processors.email")

#: Rejected recipients and bad sender addresses will not pass on a retry.
PERMANENT_SMTP_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)


def notify_failure(job: JobContext, exc: BaseException) -> None:
    """Failure hook: tell staff (an in-app notification) that an email was not sent."""
    notifications.store(
        f"failure:{job.id}",
        None,
        f"email job {job.name} {job.id} failed after {job.attempts_made} attempt(s): {exc}",
        kind="job-failed",
    )


@processor(QueueName.EMAIL, "send-welcome-email", fail_on=PERMANENT_SMTP_ERRORS,
           failure_hook=notify_failure)
def send_welcome_email(job: JobContext, user_id: int | None = None, to: str | None = None,
                       subject: str | None = None, body: str | None = None) -> dict:
    """Welcome a user (by ``user_id``) or send the given ``to``/``subject``/``body``."""
    if user_id is not None:
        message = mail.welcome_message(user_id)
        if message is None:
            logger.info("user %s vanished or has no email; nothing to send", user_id)
            return {"sent": False, "reason": "no such user or no email"}
        to, subject, body = message
    if not (to and subject and body is not None):
        raise PermanentJobError("give user_id, or to, subject and body")
    sent = mail.send_once(job.id, to, subject, body)
    job.log(f"email to {to} {'sent' if sent else 'already sent earlier'}")
    return {"sent": sent, "to": to}


@processor(QueueName.EMAIL, "send-password-reset-email", fail_on=PERMANENT_SMTP_ERRORS,
           failure_hook=notify_failure)
def send_password_reset_email(job: JobContext, user_id: int) -> dict:
    """The reset link points at ``SITE_URL``, never at a host the caller names: a job
    that could choose it would mail a valid reset token to the caller's server."""
    message = mail.password_reset_message(user_id)
    if message is None:
        return {"sent": False, "reason": "no such user or no email"}
    to, subject, body = message
    sent = mail.send_once(job.id, to, subject, body)
    job.log(f"password reset email to {to} {'sent' if sent else 'already sent earlier'}")
    return {"sent": sent, "to": to}
