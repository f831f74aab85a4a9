"""Operator actions from the dashboard: CSRF-protected POSTs, each recorded.

Job actions write "<what> by <user>" into the job's log (``tasks.operate.actions``);
actions without a job to hold the line (remove, clean, pause, resume) go to
the ``tasks.audit`` logger with the same who and what.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from tasks.jobs import permissions
from tasks.jobs.config import QueueName
from tasks.jobs.errors import JobInputError, JobNotFoundError, JobStateError
from tasks.models import JobState
from tasks.operate import actions, bulk, counts
from tasks.operate.dashboard.access import check, permission_required
from tasks.operate.dashboard.forms import CleanForm
from tasks.operate.dashboard.views import _job_or_404, _queue_or_404, job_context, page
from tasks.worker import presence

audit = logging.getLogger("tasks.audit")

#: Each job action and the permission it needs (seeing the page needs ``view_job``).
JOB_ACTIONS = {"retry": permissions.OPERATE, "promote": permissions.OPERATE,
               "cancel": permissions.OPERATE, "priority": permissions.OPERATE,
               "remove": permissions.REMOVE}


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = default
    return HttpResponseRedirect(target or default)


@permission_required(permissions.VIEW)
@require_http_methods(["GET", "POST"])
def job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    """GET the job page; POST ``action`` = retry | promote | cancel | priority | remove."""
    job = _job_or_404(job_id)
    if request.method == "GET":
        return page(request, "dashboard/job.html", job_context(job))
    action = request.POST.get("action", "")
    by = request.user.get_username()
    here = reverse("dashboard:job", args=[job.pk])
    if action not in JOB_ACTIONS:
        messages.error(request, f"Unknown action {action!r}; one of {', '.join(JOB_ACTIONS)}.")
        return HttpResponseRedirect(here)
    check(request, JOB_ACTIONS[action])
    try:
        if action == "retry":
            actions.retry_job(job.pk, by)
            messages.success(request, f"Job {job.pk} retried: it is waiting again.")
        elif action == "promote":
            actions.promote_job(job.pk, by)
            messages.success(request, f"Job {job.pk} promoted: it runs now.")
        elif action == "cancel":
            state = actions.cancel_job(job.pk, by)
            messages.success(request, f"Job {job.pk} cancelled." if state == JobState.CANCELLED
                             else f"Cancellation of running job {job.pk} requested.")
        elif action == "priority":
            priority = _int_or_text(request.POST.get("priority", ""))
            actions.change_priority(job.pk, priority, by)
            messages.success(request, f"Job {job.pk} now has priority {priority}"
                             + (": it was sent again at that priority."
                                if job.state == JobState.WAITING else "."))
        else:
            if not actions.remove_job(job.pk, by):
                raise JobStateError(job.pk, job.state, "remove")
            audit.info("job %s (%s/%s) removed by %s", job.pk, job.queue, job.name, by)
            messages.success(request, f"Job {job.pk} removed.")
            return HttpResponseRedirect(reverse("dashboard:queue-state",
                                                args=[job.queue, job.state]))
    except (JobStateError, JobNotFoundError, JobInputError) as exc:
        messages.error(request, str(exc))
    return HttpResponseRedirect(here)


def _int_or_text(value: str) -> int | str:
    """A form's number as an int; anything else as given, for the error to name."""
    return int(value) if value.strip().isdigit() else value


@permission_required(permissions.OPERATE)
@require_POST
def pause(request: HttpRequest, queue: str) -> HttpResponse:
    _queue_or_404(queue)
    by = request.user.get_username()
    presence.pause_queue(queue, by=by)
    audit.info("queue %s paused by %s", queue, by)
    messages.success(request, f"Queue {queue} paused: jobs still queue up, workers take none.")
    return _back(request, reverse("dashboard:overview"))


@permission_required(permissions.OPERATE)
@require_POST
def rate_limit(request: HttpRequest, queue: str) -> HttpResponse:
    """Set (or lift, with an empty rate) a global rate limit of the queue or of one job name."""
    _queue_or_404(queue)
    name = request.POST.get("name", "").strip()
    rate = request.POST.get("rate", "").strip()
    try:
        shown = actions.set_rate_limit(queue, name, rate, by=request.user.get_username())
    except JobInputError as exc:
        messages.error(request, str(exc))
        return _back(request, reverse("dashboard:queue", args=[queue]))
    audit.info("rate limit of %s/%s set to %r by %s", queue, name or "*", rate,
               request.user.get_username())
    messages.success(request, f"Rate limit of {queue}{'/' + name if name else ''}: "
                              f"{shown or 'none'} (every worker within 2 s).")
    return _back(request, reverse("dashboard:queue", args=[queue]))


@permission_required(permissions.OPERATE)
@require_POST
def resume(request: HttpRequest, queue: str) -> HttpResponse:
    _queue_or_404(queue)
    by = request.user.get_username()
    presence.resume_queue(queue, by=by)
    audit.info("queue %s resumed by %s", queue, by)
    messages.success(request, f"Queue {queue} resumed.")
    return _back(request, reverse("dashboard:overview"))


@permission_required(permissions.OPERATE)
@require_http_methods(["GET", "POST"])
def retry_failed(request: HttpRequest, queue: str) -> HttpResponse:
    """GET: a confirmation showing how many jobs; POST: retry them all."""
    _queue_or_404(queue)
    if request.method == "GET":
        return page(request, "dashboard/confirm_retry.html", {
            "queue": queue, "count": counts.state_count(queue, JobState.FAILED),
        })
    by = request.user.get_username()
    outcome = bulk.retry_failed_or_schedule(queue, by)
    if outcome.in_background:
        audit.info("retry of %d failed job(s) of %s started by %s as job %s", outcome.total,
                   queue, by, outcome.job_id)
        messages.success(request, f"Retrying {outcome.total} failed job(s) of {queue} in the "
                         "background: this job shows its progress.")
        return HttpResponseRedirect(reverse("dashboard:job", args=[outcome.job_id]))
    audit.info("%d failed job(s) of %s retried by %s", outcome.done, queue, by)
    messages.success(request, f"{outcome.done} failed job(s) of {queue} retried.")
    return HttpResponseRedirect(reverse("dashboard:queue-state", args=[queue, JobState.FAILED]))


@permission_required(permissions.REMOVE)
@require_http_methods(["GET", "POST"])
def clean(request: HttpRequest, queue: str) -> HttpResponse:
    _queue_or_404(queue)
    form = CleanForm(request.POST or None, initial={"state": request.GET.get("state", "completed")})
    if request.method == "POST" and form.is_valid():
        state = form.cleaned_data["state"]
        by = request.user.get_username()
        outcome = bulk.clean_or_schedule(QueueName(queue), form.grace(), state, by)
        if outcome.in_background:
            audit.info("clean of %d %s job(s) of %s started by %s as job %s", outcome.total,
                       state, queue, by, outcome.job_id)
            messages.success(request, f"Deleting {outcome.total} {state} job(s) of {queue} in "
                             "the background: this job shows its progress.")
            return HttpResponseRedirect(reverse("dashboard:job", args=[outcome.job_id]))
        n = outcome.done
        audit.info("%d %s job(s) of %s older than %s deleted by %s", n, state, queue,
                   form.grace(), by)
        messages.success(request, f"{n} {state} job(s) of {queue} older than "
                         f"{form.cleaned_data['age']} {form.cleaned_data['unit']} deleted.")
        return HttpResponseRedirect(reverse("dashboard:queue-state", args=[queue, state]))
    return page(request, "dashboard/clean.html", {"queue": queue, "form": form},
                status=400 if form.errors else 200)
