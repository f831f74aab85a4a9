"""Email sending with an idempotency record (no Celery here)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tasks.models import EmailDelivery

logger = logging.getLogger("tasks.email")


def send_once(job_id: str, to: str, subject: str, body: str) -> bool:
    """Send unless this job already sent its email; True if it was sent now.

    The delivery row is claimed before the SMTP call and released if the
    call fails (so a retry can send). A worker killed between the SMTP call
    and the ``sent_at`` update keeps its claim: the email is not re-sent
    (at most once), and ``sent_at`` stays empty to flag it for review.
    """
    try:
        with transaction.atomic():
            delivery = EmailDelivery.objects.create(job_id=job_id, to=to, subject=subject[:255])
    except IntegrityError:
        logger.info("email of job %s already sent; not sending again", job_id)
        return False
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
    except BaseException:
        delivery.delete()
        raise
    EmailDelivery.objects.filter(pk=delivery.pk).update(sent_at=timezone.now())
    return True


def welcome_message(user_id: int) -> tuple[str, str, str] | None:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.email:
        return None
    name = user.get_full_name() or user.get_username()
    return (
        user.email,
        "Welcome to IntelGraph",
        f"Hello {name},\n\nThank you for signing up for IntelGraph.\n",
    )


def password_reset_message(user_id: int) -> tuple[str, str, str] | None:
    """The reset email of ``user_id``; its link is on ``SITE_URL`` (settings only)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.email:
        return None
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = f"{settings.SITE_URL.rstrip('/')}/accounts/reset/{uid}/{token}/"
    return (
        user.email,
        "Reset your IntelGraph password",
        f"Someone asked to reset the password of {user.get_username()}.\n"
        f"Follow this link to choose a new one: {link}\n"
        "If it was not you, ignore this email.\n",
    )
