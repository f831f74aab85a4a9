"""Dashboard pages (``view_job`` permission): overview, per-queue listings, the job page, JSON for refresh."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from tasks.enqueue import ratelimits
from tasks.enqueue.task import job_names
from tasks.jobs import permissions
from tasks.jobs.config import QUEUE_NAMES, JobPriority, QueueName
from tasks.jobs.states import ALL_STATES, JobState
from tasks.models import Job, JobWindow
from tasks.operate import counts, figures
from tasks.operate.dashboard import diagnosis, history, queries
from tasks.operate.dashboard.access import permission_required
from tasks.operate.dashboard.forms import CleanForm, JobFilterForm
from tasks.upkeep.schedules import overdue_schedules
from tasks.worker import presence

DEFAULT_FLOWER_URL = "http://127.0.0.1:5555"


def flower_url() -> str:
    return getattr(settings, "FLOWER_URL", "") or DEFAULT_FLOWER_URL


def page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """``render`` with what the dashboard's base template needs."""
    return render(request, template, {"flower_url": flower_url(), **context}, status=status)


def _queue_or_404(queue: str) -> str:
    if queue not in QUEUE_NAMES:
        raise Http404(f"no queue {queue!r}")
    return queue


def overview_data() -> dict:
    """Counts, pause flags, consumers (live and missing) and oldest waiting age of every queue."""
    now = timezone.now()
    consumers = presence.consumers(now)
    missing = presence.missing_workers(now)
    paused = presence.paused_queues()
    queues = []
    for queue in QUEUE_NAMES:
        state_counts = counts.queue_counts(queue)
        oldest_age = counts.age_seconds(counts.oldest_waiting(queue), now)
        queues.append({
            "name": queue,
            "counts": {state: c.as_json() for state, c in state_counts.items()},
            "paused": queue in paused,
            "consumers": sorted(consumers.get(queue, [])),
            "missing_consumers": sorted(w.hostname for w in missing if queue in w.queues),
            "oldest_waiting_age_s": oldest_age,
            "oldest_waiting_text": queries.duration_text(oldest_age),
        })
    return {"at": now.isoformat(), "states": ALL_STATES, "queues": queues,
            "overdue_schedules": overdue_schedules(now)}


@permission_required(permissions.VIEW)
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    return page(request, "dashboard/overview.html",
                {"data": overview_data(), "states": ALL_STATES})


@permission_required(permissions.VIEW)
@require_GET
def counts_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(overview_data())


@permission_required(permissions.VIEW)
@require_GET
def chart_json(request: HttpRequest) -> JsonResponse:
    window = request.GET.get("window", "1h")
    if window not in figures.WINDOWS:
        return JsonResponse({"error": f"window must be one of {list(figures.WINDOWS)}"},
                            status=400)
    queue = request.GET.get("queue") or None
    if queue is not None:
        _queue_or_404(queue)
    name = request.GET.get("name") or None
    return JsonResponse(figures.series(window, queue, name))


@permission_required(permissions.VIEW)
@require_GET
def queue_jobs(request: HttpRequest, queue: str, state: str = JobState.WAITING) -> HttpResponse:
    _queue_or_404(queue)
    if state not in ALL_STATES:
        raise Http404(f"no state {state!r}")
    form = JobFilterForm(request.GET or None, names=job_names(QueueName(queue)))
    filters = form.to_filter()
    listing = queries.job_page(queue, state, filters, before=request.GET.get("before", ""),
                            after=request.GET.get("after", ""))
    for job in listing.jobs:
        job.progress_pct = _percent(job.progress)
    situation = None
    if state in (JobState.WAITING, JobState.DELAYED):
        situation = diagnosis.QueueSituation.of(queue)
    query = request.GET.copy()
    for key in ("before", "after"):
        query.pop(key, None)
    return page(request, "dashboard/queue.html", {
        "queue": queue, "state": state, "states": ALL_STATES, "form": form,
        "filters": filters, "page": listing, "counts": counts.queue_counts(queue),
        "paused": queue in presence.paused_queues(), "situation": situation,
        "query": query.urlencode(), "clean_form": CleanForm(initial={"state": state}),
        "rate_limits": sorted((name or "(whole queue)", str(rate)) for (q, name), rate
                              in ratelimits.current().items() if q == queue),
        "job_names": job_names(QueueName(queue)),
    })


def _job_or_404(job_id: str) -> Job:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404(f"no job {job_id!r}")
    return job


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def job_context(job: Job) -> dict:
    return {
        "job": job,
        "data_json": _pretty(job.data),
        "result_json": _pretty(job.result),
        "backoff_json": json.dumps(job.backoff, sort_keys=True),
        "why": diagnosis.reasons(job),
        "events": history.events(job),
        "logs": job.logs.order_by("id")[:500],
        "progress_pct": _percent(job.progress),
        "progress_bar": job.state == JobState.ACTIVE or bool(_percent(job.progress)),
        "flower_task_url": f"{flower_url()}/task/{job.pk}",
        "finished": job.state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED),
        "priorities": [(p.value, p.name) for p in JobPriority],
        "windows": list(JobWindow.objects.filter(job_id=job.pk, expires_at__gt=timezone.now())),
        **_workflow(job),
    }


def _workflow(job: Job) -> dict:
    """Its place in a Celery canvas: the job that started it, the ones it started, its group."""
    from tasks.models import JobGroup

    fields = ("pk", "queue", "name", "state")
    return {
        "parent": Job.objects.filter(pk=job.parent_id).only(*fields[1:]).first()
        if job.parent_id else None,
        "children": list(Job.objects.children_of(job.pk).only(*fields[1:])
                         .order_by("created_at")[:50]),
        "group": JobGroup.objects.filter(pk=job.group_id).first() if job.group_id else None,
    }


def _percent(progress: object) -> float | None:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        return None
    return max(0.0, min(float(progress), 100.0))


@permission_required(permissions.VIEW)
@require_GET
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    """What the job page polls: state and progress (no data, no result)."""
    job = _job_or_404(job_id)
    return JsonResponse({"id": job.pk, "state": job.state, "progress": job.progress,
                         "attempts_made": job.attempts_made})
