"""Job records in Django admin (filters, search, read-only data, bulk actions) and schedules."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from tasks.forms import ScheduleForm
from tasks.jobs import permissions
from tasks.jobs.errors import JobStateError
from tasks.models import Dataset, Job, JobLog, Notification, QueueStats, Report
from tasks.operate import actions
from tasks.operate.dashboard.next_runs import next_runs


class JobLogInline(admin.TabularInline):
    model = JobLog
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "message")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "queue", "name", "state", "priority", "attempts_made", "max_attempts",
                    "progress", "created_at", "finished_at")
    list_filter = ("queue", "state", "name", "priority", "created_at")
    search_fields = ("id", "name")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobLogInline]
    actions = ["retry_jobs", "cancel_jobs", "remove_jobs"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """Never delete rows directly: that skips the state guard of "Remove" (an active
        job's row would vanish under its worker); the remove action is the way."""
        return False

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm(permissions.OPERATE)

    def has_remove_permission(self, request) -> bool:
        return request.user.has_perm(permissions.REMOVE)

    def _apply(self, request, queryset, action, verb: str) -> None:
        changed = 0
        by = request.user.get_username()
        for job_id in queryset.values_list("id", flat=True):
            try:
                if action(job_id, by):
                    changed += 1
            except JobStateError:
                pass
        self.message_user(request, f"{changed} job(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Retry selected failed/cancelled jobs", permissions=["operate"])
    def retry_jobs(self, request, queryset) -> None:
        self._apply(request, queryset, actions.retry_job, "retried")

    @admin.action(description="Cancel selected jobs", permissions=["operate"])
    def cancel_jobs(self, request, queryset) -> None:
        self._apply(request, queryset, actions.cancel_job, "cancelled or asked to stop")

    @admin.action(description="Remove selected jobs (not active ones)", permissions=["remove"])
    def remove_jobs(self, request, queryset) -> None:
        self._apply(request, queryset, actions.remove_job, "removed")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "status", "rows_processed", "created_at")
    list_filter = ("status",)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "kind", "message", "created_at", "read")
    list_filter = ("kind", "read")


@admin.register(QueueStats)
class QueueStatsAdmin(admin.ModelAdmin):
    list_display = ("queue", "window_start", "completed", "failed", "failure_rate",
                    "throughput_per_min", "avg_duration_ms", "p95_duration_ms")
    list_filter = ("queue",)


admin.site.register(Report)


# -- django-celery-beat: each schedule's next five run times on its change page --------


#: Schedule fields the service does not offer (``ScheduleForm`` says why if one is set).
NOT_OFFERED = ("solar", "queue", "exchange", "routing_key", "headers")


def _without(fieldsets: tuple, names: tuple[str, ...]) -> tuple:
    return tuple((title, {**options, "fields": tuple(f for f in options["fields"]
                                                     if f not in names)})
                 for title, options in fieldsets)


def _with_next_runs(fieldsets: tuple) -> tuple:
    """django-celery-beat's fieldsets with ``next_run_times`` after the one holding ``crontab``.

    Found by the field it holds, not by position or title; a layout without
    that field gets a fieldset of its own.
    """
    placed = False
    result = []
    for title, options in fieldsets:
        if not placed and "crontab" in options.get("fields", ()):
            options = {**options, "fields": (*options["fields"], "next_run_times")}
            placed = True
        result.append((title, options))
    if not placed:
        result.append(("Next runs", {"fields": ("next_run_times",)}))
    return tuple(result)


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's admin, plus a preview of the next five runs in the schedule's zone."""

    form = ScheduleForm
    readonly_fields = (*BeatPeriodicTaskAdmin.readonly_fields, "next_run_times")
    fieldsets = _with_next_runs(_without(BeatPeriodicTaskAdmin.fieldsets, NOT_OFFERED))

    @admin.display(description="Next five runs")
    def next_run_times(self, obj: PeriodicTask) -> str:
        if obj is None or obj.pk is None:
            return "shown once the schedule is saved"
        runs = next_runs(obj)
        if not runs.times:
            return runs.note or "no upcoming run"
        items = format_html_join("", "<li>{}</li>", (
            (f"{t:%a %Y-%m-%d %H:%M %Z}",) for t in runs.times))
        return format_html('<ul class="next-runs" data-zone="{}">{}</ul><div class="help">'
                           "in {}</div>", runs.zone, items, runs.zone)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
