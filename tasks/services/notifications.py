"""In-app notifications and webhooks (no Celery here)."""

from __future__ import annotations

import json
import urllib.request

from django.conf import settings

from tasks.models import Notification


def store(job_id: str | None, user_id: int | None, message: str, kind: str = "notice") -> Notification:
    """One notification per job: a redelivered job finds its row and adds none."""
    if job_id is None:
        return Notification.objects.create(user_id=user_id, message=message, kind=kind)
    notification, _ = Notification.objects.get_or_create(
        job_id=job_id, defaults={"user_id": user_id, "message": message, "kind": kind}
    )
    return notification


def post_webhook(url: str, payload: dict, timeout_s: float | None = None) -> int:
    """POST JSON to ``url``; returns the HTTP status. Network errors propagate (retried)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook url {url!r} must be http(s)")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "IntelGraph-Tasks"},
        method="POST",
    )
    timeout = timeout_s if timeout_s is not None else settings.WEBHOOK_TIMEOUT_S
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
        return response.status
