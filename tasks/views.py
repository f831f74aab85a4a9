"""Signup (triggers the welcome email) and the JSON job API."""

from __future__ import annotations

from functools import wraps

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tasks.enqueue.api_requests import add_job_from_request
from tasks.forms import SignupForm
from tasks.jobs.errors import JobInputError, JobNotAllowedError
from tasks.models import Job
from tasks.processors.email import send_welcome_email


def staff_json(view):
    """Staff session required; JSON 401/403 instead of a login redirect."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "authentication required"}, status=401)
        if not request.user.is_staff:
            return JsonResponse({"error": "staff only"}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            # Recorded in this transaction; published only if it commits.
            send_welcome_email.delay(user.pk)
        return render(request, "tasks/signup_done.html", {"user": user}, status=201)
    return render(request, "tasks/signup.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
@staff_json
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
@staff_json
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
