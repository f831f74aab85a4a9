"""Signup (triggers the welcome email), password reset links, and the JSON job API."""

from __future__ import annotations

import json
from functools import wraps
from urllib.parse import urlsplit

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tasks.enqueue.api_requests import add_job_from_request
from tasks.forms import SignupForm
from tasks.jobs import permissions
from tasks.jobs.errors import JobInputError, JobNotAllowedError, JobNotFoundError, JobStateError
from tasks.models import Job
from tasks.operate import actions, throttle
from tasks.processors.email import send_welcome_email


def api_permission(permission: str, *alternatives: str):
    """A session holding ``permission`` (or one of ``alternatives``); JSON 401/403 instead of
    a login redirect."""
    accepted = (permission, *alternatives)

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return JsonResponse({"error": "authentication required"}, status=401)
            if not any(request.user.has_perm(name) for name in accepted):
                needed = " or ".join(repr(name) for name in accepted)
                return JsonResponse({"error": f"needs the {needed} permission"}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _too_many(request: HttpRequest, form: SignupForm, what: str) -> HttpResponse:
    form.add_error(None, f"Too many signups {what}; try again later.")
    return render(request, "tasks/signup.html", {"form": form}, status=429)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Limited per client address and per email (settings ``SIGNUP_LIMIT_*``); off unless
    ``SIGNUP_ENABLED`` (production default: off)."""
    if not settings.SIGNUP_ENABLED:
        raise Http404("signup is turned off")
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        address = get_client_ip_address(request) or "unknown"
        if not throttle.allow("signup-address", address, *settings.SIGNUP_LIMIT_PER_ADDRESS):
            return _too_many(request, form, "from your address")
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"].strip().lower()
        if not throttle.allow("signup-email", email, *settings.SIGNUP_LIMIT_PER_EMAIL):
            return _too_many(request, form, "for this email address")
        with transaction.atomic():
            user = form.save()
            # Recorded in this transaction; published only if it commits.
            send_welcome_email.delay(user.pk)
        return render(request, "tasks/signup_done.html", {"user": user}, status=201)
    return render(request, "tasks/signup.html", {"form": form}, status=400 if form.errors else 200)


class PasswordResetView(auth_views.PasswordResetView):
    """Reset links are built from ``SITE_URL``, never from the Host header a caller sent."""

    def form_valid(self, form):
        site = urlsplit(settings.SITE_URL)
        form.save(domain_override=site.netloc, use_https=site.scheme == "https",
                  token_generator=self.token_generator, from_email=self.from_email,
                  email_template_name=self.email_template_name,
                  subject_template_name=self.subject_template_name, request=self.request,
                  html_email_template_name=self.html_email_template_name,
                  extra_email_context=self.extra_email_context)
        return HttpResponseRedirect(self.get_success_url())


@require_POST
@api_permission(permissions.ENQUEUE)
def create_job(request: HttpRequest) -> JsonResponse:
    """``POST /api/jobs`` ``{"queue", "name", "data", "options": {...}}`` → 201 ``{"id"}``.

    The body, the job (only ``JOB_API_ALLOWED``) and its options are checked by
    ``tasks.enqueue.api_requests``: 403 for a job the API may not enqueue, 400 otherwise.
    """
    try:
        job_id = add_job_from_request(request.body)
    except JobNotAllowedError as exc:
        return JsonResponse({"error": str(exc), "kind": type(exc).__name__}, status=403)
    except JobInputError as exc:
        return JsonResponse({"error": str(exc), "kind": type(exc).__name__}, status=400)
    return JsonResponse({"id": job_id}, status=201)


@require_GET
@api_permission(permissions.VIEW)
def job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return JsonResponse({"error": f"no job with id {job_id!r}"}, status=404)
    last_error = job.errors[-1]["error"] if job.errors else None
    return JsonResponse({
        "id": job.id, "queue": job.queue, "name": job.name, "state": job.state,
        "progress": job.progress, "result": job.result, "error": last_error,
        "attempts_made": job.attempts_made, "max_attempts": job.max_attempts,
        "priority": job.priority, "data": job.data,
        "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "run_at": job.run_at,
    })


@require_POST
@api_permission(permissions.ENQUEUE, permissions.OPERATE)
def change_priority(request: HttpRequest, job_id: str) -> JsonResponse:
    """``POST /api/jobs/<id>/priority`` ``{"priority": 1..5}`` → 200 ``{"id", "state", "priority"}``.

    A waiting or delayed job only (``tasks.operate.actions.change_priority``):
    400 for a bad body or priority, 404 for no such job, 409 for a job in
    another state (or a waiting one whose message cannot be taken back).
    """
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or set(body) != {"priority"}:
        return JsonResponse({"error": 'body must be {"priority": 1..5}',
                             "kind": "InvalidRequestError"}, status=400)
    by = f"{request.user.get_username()} (API)"
    try:
        state = actions.change_priority(job_id, body["priority"], by)
    except JobInputError as exc:
        return JsonResponse({"error": str(exc), "kind": type(exc).__name__}, status=400)
    except JobNotFoundError as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    except JobStateError as exc:
        return JsonResponse({"error": str(exc), "kind": type(exc).__name__}, status=409)
    return JsonResponse({"id": job_id, "state": state,
                         "priority": Job.objects.filter(pk=job_id)
                         .values_list("priority", flat=True).first()})
