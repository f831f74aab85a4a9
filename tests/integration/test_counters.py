"""Figures that retention cannot touch: more jobs run than retention keeps, every figure still counts them."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tasks.jobs.config import QUEUE_PRESETS, QueueName
from tasks.models import Job, JobCounter
from tasks.operate import figures
from tasks.processors.analytics import weekly_report
from tasks.queues import add_job
from tasks.upkeep import counters, retention
from tests.integration.helpers import wait_state

RUNS = 30
KEPT = 5


def _metric(text: str, metric: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {metric} {labels}")


@pytest.fixture
def few_kept(monkeypatch):
    """Retention keeps only the newest few completed analytics jobs."""
    preset = dataclasses.replace(QUEUE_PRESETS[QueueName.ANALYTICS], keep_completed_count=KEPT)
    monkeypatch.setitem(QUEUE_PRESETS, QueueName.ANALYTICS, preset)


def test_every_figure_counts_every_run_after_retention_deleted_most_rows(service, few_kept,
                                                                         client, settings):
    settings.METRICS_TOKEN = "counters-test-token-0123456789abcdef"
    ids = [add_job(QueueName.ANALYTICS, "record-analytics", {"key": f"counted-{n}"})
           for n in range(RUNS)]
    failing = add_job(QueueName.DATA_PROCESSING, "always-fails", {"key": "counted-f"},
                      attempts=2, backoff={"type": "fixed", "delay": 100})
    for job_id in ids:
        wait_state(job_id, "completed")
    wait_state(failing, "failed")

    retention.enforce_retention()  # deletes all but KEPT completed analytics rows
    assert Job.objects.filter(queue="analytics", state="completed").count() == KEPT
    cache.clear()

    chart = figures.series("1h", "analytics", "record-analytics")
    assert sum(chart["completed"]) == RUNS
    assert sum(figures.series("90d")["failed"]) == 1
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}"
                      ).content.decode()
    assert _metric(text, "intelgraph_jobs_finished_total", queue="analytics",
                   name="record-analytics", outcome="completed") == RUNS
    assert _metric(text, "intelgraph_job_duration_seconds_count", queue="analytics",
                   name="record-analytics") == RUNS
    assert _metric(text, "intelgraph_job_retries_total", queue="data-processing",
                   name="always-fails") == 1
    now = timezone.now()
    hour = figures.summary(figures.by_queue(now - timedelta(hours=1))["analytics"],
                           now - timedelta(hours=1), now)
    assert hour["completed"] == RUNS
    report = weekly_report.run(None)  # the processor body, on the test's database
    from tasks.models import Report

    body = Report.objects.get(pk=report["report_id"]).body
    assert body["analytics"]["completed"] == RUNS and body["data-processing"]["failed"] == 1
    out = StringIO()
    call_command("queues", "stats", stdout=out)
    analytics = next(line for line in out.getvalue().splitlines() if line.startswith("analytics"))
    assert analytics.split()[8] == str(RUNS)  # completed/1h


def test_the_promoter_folds_finished_rows_and_moves_the_watermark(service):
    job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "folded"})
    finished = wait_state(job_id, "completed").finished_at

    counters.fold(now=finished + counters.FOLD_LAG + timedelta(seconds=1))

    assert counters.watermark() > finished
    row = JobCounter.objects.get(queue="analytics", name="record-analytics", span="minute")
    assert (row.completed, row.runs) == (1, 1)
    assert figures.totals()[("analytics", "record-analytics")].completed == 1  # not twice
    Job.objects.filter(pk=job_id).delete()  # a row already folded: nothing more to count
    assert figures.totals()[("analytics", "record-analytics")].completed == 1


def test_rolling_up_keeps_every_count(db):
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(days=2)
    counters.add({("email", "send-welcome-email", start): counters.Tally(completed=3, runs=3,
                                                                         duration_sum=1.5),
                  ("email", "send-welcome-email", start + timedelta(minutes=1)):
                      counters.Tally(completed=2, failed=1)})
    before = figures.totals()[("email", "send-welcome-email")]

    counters.roll_up()
    assert set(JobCounter.objects.values_list("span", flat=True)) == {"hour"}
    counters.roll_up(now=timezone.now() + timedelta(days=120))
    assert set(JobCounter.objects.values_list("span", flat=True)) == {"total"}

    after = figures.totals()[("email", "send-welcome-email")]
    assert (after.completed, after.failed, after.runs, after.duration_sum) == (
        before.completed, before.failed, before.runs, before.duration_sum) == (5, 1, 3, 1.5)
