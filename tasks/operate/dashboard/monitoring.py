"""``GET /queues/health`` (status for anyone, details with a permission or the token) and
``GET /metrics`` (permission or token)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from tasks.jobs import permissions
from tasks.operate import health as health_checks
from tasks.operate import metrics as job_metrics


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 (ok or degraded) or 503 (fail); details for ``view_job`` or the metrics token."""
    healthy, body = health_checks.cached_report()
    if not (_token_ok(request) or request.user.has_perm(permissions.VIEW)):
        body = health_checks.public(body)
    return JsonResponse(body, status=200 if healthy else 503)


def _token_ok(request: HttpRequest) -> bool:
    expected = getattr(settings, "METRICS_TOKEN", "") or ""
    if not expected:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # Bytes: compare_digest refuses non-ASCII str, and a header is the caller's to choose.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text; ``Authorization: Bearer $METRICS_TOKEN`` or a session with ``view_job``."""
    if not (_token_ok(request) or request.user.has_perm(permissions.VIEW)):
        response = HttpResponse(f"metrics need a session with the {permissions.VIEW} permission "
                                "or Authorization: Bearer <METRICS_TOKEN>\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(job_metrics.render(), content_type=CONTENT_TYPE_LATEST)
