"""Analytics queue: figures from the job counters (retention cannot touch them), and the cleanup."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tasks.jobs.config import QueueName
from tasks.models import EmailDelivery, Notification, QueueStats, Report
from tasks.operate import figures
from tasks.upkeep.retention import enforce_retention
from tasks.worker.job import JobContext
from tasks.worker.registry import processor

STATS_KEPT_DAYS = 90
#: What ``QueueStats`` keeps of ``figures.summary``.
STATS_FIELDS = ("completed", "failed", "failure_rate", "throughput_per_min", "avg_duration_ms",
                "p95_duration_ms")
READ_NOTIFICATIONS_KEPT_DAYS = 30
EMAIL_RECORDS_KEPT_DAYS = 30


@processor(QueueName.ANALYTICS, "hourly-stats")
def hourly_stats(job: JobContext) -> dict:
    """Store per-queue figures for the last full hour."""
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=1)
    stored = {}
    tallies = figures.by_queue(start, end)
    for queue in QueueName:
        found = figures.summary(tallies.get(queue.value, figures.Tally()), start, end)
        QueueStats.objects.update_or_create(
            queue=queue.value, window_start=start, window_end=end,
            defaults={field: found[field] for field in STATS_FIELDS},
        )
        stored[queue.value] = found["completed"]
    job.log(f"stats for {start:%Y-%m-%d %H:00}: {stored}")
    return {"window_start": start.isoformat(), "completed": stored}


@processor(QueueName.ANALYTICS, "weekly-report")
def weekly_report(job: JobContext) -> dict:
    end = timezone.now()
    start = end - timedelta(days=7)
    tallies = figures.by_queue(start, end)
    body = {queue.value: {"queue": queue.value, **figures.summary(
        tallies.get(queue.value, figures.Tally()), start, end)} for queue in QueueName}
    report = Report.objects.create(kind="weekly", period_start=start, period_end=end, body=body)
    return {"report_id": report.pk}


@processor(QueueName.ANALYTICS, "daily-cleanup")
def daily_cleanup(job: JobContext) -> dict:
    """Apply job retention and drop old stats, read notifications and email records."""
    now = timezone.now()
    removed = {"jobs": sum(enforce_retention(now).values())}
    removed["stats"] = QueueStats.objects.filter(
        window_end__lt=now - timedelta(days=STATS_KEPT_DAYS)).delete()[0]
    removed["notifications"] = Notification.objects.filter(
        read=True, created_at__lt=now - timedelta(days=READ_NOTIFICATIONS_KEPT_DAYS)).delete()[0]
    removed["email_records"] = EmailDelivery.objects.filter(
        sent_at__lt=now - timedelta(days=EMAIL_RECORDS_KEPT_DAYS)).delete()[0]
    job.log(f"removed {removed}")
    return removed
