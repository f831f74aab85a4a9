"""In-app notifications and webhooks (no Celery here)."""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings

from tasks.jobs.errors import WebhookNotAllowedError
from tasks.models import Notification


def store(job_id: str | None, user_id: int | None, message: str, kind: str = "notice") -> Notification:
    """One notification per job: a redelivered job finds its row and adds none."""
    if job_id is None:
        return Notification.objects.create(user_id=user_id, message=message, kind=kind)
    notification, _ = Notification.objects.get_or_create(
        job_id=job_id, defaults={"user_id": user_id, "message": message, "kind": kind}
    )
    return notification


def check_webhook_url(url: object) -> str:
    """``url`` if its host is allowed (``NOTIFY_WEBHOOK_HOSTS``); ``WebhookNotAllowedError`` if not.

    Entries: ``host`` (the scheme's default port), ``host:port`` or ``host:*``.
    The host is read the way ``urllib`` will connect (``urlsplit``), so
    ``https://allowed@evil.example/`` is ``evil.example``; credentials in the
    URL are refused outright.
    """
    allowed = {entry.strip().lower() for entry in settings.NOTIFY_WEBHOOK_HOSTS if entry.strip()}
    if not allowed:
        raise WebhookNotAllowedError(url, "webhooks are off (NOTIFY_WEBHOOK_HOSTS is empty)")
    if not isinstance(url, str) or len(url) > 2000:
        raise WebhookNotAllowedError(url, "give an http(s) URL of at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookNotAllowedError(url, f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookNotAllowedError(url, "give an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookNotAllowedError(url, "credentials in the URL are not accepted")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = {"http": 80, "https": 443}[parts.scheme]
    if (port in (None, default_port) and host in allowed) or f"{host}:*" in allowed \
            or f"{host}:{port or default_port}" in allowed:
        return url
    raise WebhookNotAllowedError(url, f"host {host}:{port or default_port} is not in "
                                      "NOTIFY_WEBHOOK_HOSTS")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would send the POST's data to a host nobody allowed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        raise WebhookNotAllowedError(req.full_url, f"it answered {code} to {newurl!r}; "
                                                   "redirects are not followed")


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_webhook(url: str, payload: dict, timeout_s: float | None = None) -> int:
    """POST JSON to an allowed ``url``; returns the HTTP status. Network errors propagate (retried)."""
    check_webhook_url(url)
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "IntelGraph-Tasks"},
        method="POST",
    )
    timeout = timeout_s if timeout_s is not None else settings.WEBHOOK_TIMEOUT_S
    with _OPENER.open(request, timeout=timeout) as response:  # host checked above
        return response.status
