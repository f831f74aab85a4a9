"""Each processor end to end through the real worker."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tasks.enqueue.publishing import message_for, publish
from tasks.models import Dataset, EmailDelivery, Job, Notification, QueueStats, Report
from tasks.operate.actions import cancel_job
from tasks.processors.email import send_password_reset_email, send_welcome_email
from tasks.queues import JobPriority, QueueName, add_job
from tests.integration.helpers import wait_state
from tests.processes import wait_for


def _mail_files(service_tmp: Path) -> list[str]:
    folder = service_tmp / "mail"
    return [p.read_text() for p in folder.glob("*.log")] if folder.exists() else []


def test_welcome_email_by_user_id_with_delay_call(service, service_tmp):
    user = User.objects.create_user("ada", "ada@example.com", "pw-12345678")
    result = send_welcome_email.delay(user.pk)
    job = wait_state(result.id, "completed")
    assert job.queue == "email" and job.name == "send-welcome-email"
    assert job.data == {"user_id": user.pk}
    assert job.result == {"sent": True, "to": "ada@example.com"}
    assert any("To: ada@example.com" in m and "Welcome to IntelGraph" in m
               for m in _mail_files(service_tmp))
    assert EmailDelivery.objects.get(job_id=job.id).sent_at is not None


def test_add_job_email_with_explicit_message_and_redelivery_sends_once(service, service_tmp):
    job_id = add_job(QueueName.EMAIL, "send-welcome-email",
                     {"to": "grace@example.com", "subject": "Hi Grace", "body": "Welcome!"},
                     priority=JobPriority.HIGH)
    job = wait_state(job_id, "completed")
    assert job.priority == JobPriority.HIGH
    # Simulate a redelivery of the same job after an operator retry: no second email.
    Job.objects.filter(pk=job_id).update(state="waiting")
    publish([message_for(job)])
    wait_state(job_id, "completed")
    assert Job.objects.get(pk=job_id).result == {"sent": False, "to": "grace@example.com"}
    sent = [m for m in _mail_files(service_tmp) if "Hi Grace" in m]
    assert len(sent) == 1
    assert EmailDelivery.objects.filter(job_id=job_id).count() == 1


def test_password_reset_email_contains_a_working_link(service, service_tmp, settings):
    user = User.objects.create_user("alan", "alan@example.com", "pw-12345678")
    result = send_password_reset_email.delay(user.pk)
    wait_state(result.id, "completed")
    mail = next(m for m in _mail_files(service_tmp) if "alan@example.com" in m and "Reset" in m)
    site = settings.SITE_URL.rstrip("/")  # the worker's, from the same environment
    link = next(line for line in mail.splitlines() if f"{site}/accounts/reset/" in line)
    assert link.split(site)[1].count("/") >= 4


@pytest.fixture
def webhook_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_notify_user_stores_a_notification_and_posts_the_webhook(service, webhook_server):
    url, received = webhook_server
    user = User.objects.create_user("linus", "l@example.com", "pw-12345678")
    job_id = add_job(QueueName.NOTIFICATIONS, "notify-user",
                     {"user_id": user.pk, "message": "Your export is ready", "webhook_url": url})
    wait_state(job_id, "completed")
    notification = Notification.objects.get(job_id=job_id)
    assert notification.user == user and notification.message == "Your export is ready"
    assert notification.webhook_status == 204
    assert received == [{"job_id": job_id, "user_id": user.pk, "kind": "notice",
                         "message": "Your export is ready"}]


def test_unreachable_webhook_is_retried_then_failed(service):
    job_id = add_job(QueueName.NOTIFICATIONS, "notify-user",
                     {"user_id": None, "message": "x", "webhook_url": "http://127.0.0.1:9/hook"},
                     attempts=2, backoff={"type": "fixed", "delay": 100})
    job = wait_state(job_id, "failed")
    assert job.attempts_made == 2
    assert "URLError" in job.errors[-1]["error"] or "ConnectionRefused" in job.errors[-1]["error"]


def test_send_reminder_with_a_delay(service):
    job_id = add_job(QueueName.NOTIFICATIONS, "send-reminder",
                     {"message": "Your trial expires soon"}, delay=1000)
    assert Job.objects.get(pk=job_id).state == "delayed"
    wait_state(job_id, "completed")
    assert Notification.objects.get(job_id=job_id).kind == "reminder"


def _csv(rows: int) -> str:
    return "id,amount,label\n" + "".join(f"{i},{i * 2},row{i}\n" for i in range(rows))


def test_process_data_reports_progress_and_summarises(service):
    dataset = Dataset.objects.create(name="sales.csv", content=_csv(1000))
    job_id = add_job(QueueName.DATA_PROCESSING, "process-data",
                     {"userId": "user123", "dataId": dataset.pk, "chunk_size": 100},
                     priority=JobPriority.CRITICAL)
    job = wait_state(job_id, "completed")
    assert job.progress == 100
    assert job.result == {"processed": True, "rows": 1000}
    dataset.refresh_from_db()
    assert dataset.status == "processed" and dataset.rows_processed == 1000
    assert dataset.summary["columns"]["amount"]["sum"] == sum(i * 2 for i in range(1000))
    assert "processed 1000 rows for user user123" in [log.message for log in job.logs.all()]


def test_process_data_stops_cleanly_when_cancelled(service):
    dataset = Dataset.objects.create(name="big.csv", content=_csv(200_000))
    job_id = add_job(QueueName.DATA_PROCESSING, "process-data",
                     {"userId": "u", "dataId": dataset.pk, "chunk_size": 50})
    wait_for(lambda: (Job.objects.get(pk=job_id).progress or 0) >= 1, 30, message="progress")
    assert cancel_job(job_id, by="test") == "active"
    job = wait_state(job_id, "cancelled")
    dataset.refresh_from_db()
    assert dataset.status == "cancelled"
    assert 0 < dataset.rows_processed < 200_000
    assert job.progress < 100


def test_process_data_for_a_vanished_dataset_is_a_logged_no_op(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "process-data", {"userId": "u", "dataId": 999999})
    job = wait_state(job_id, "completed")
    assert job.result == {"processed": False, "reason": "no such dataset"}


def test_analytics_jobs_compute_figures_from_job_records(service):
    ids = [add_job(QueueName.EMAIL, "send-welcome-email",
                   {"to": f"u{i}@example.com", "subject": "s", "body": "b"}) for i in range(3)]
    for job_id in ids:
        wait_state(job_id, "completed")
    report_id = add_job(QueueName.ANALYTICS, "weekly-report", {})
    report = wait_state(report_id, "completed")
    body = Report.objects.get(pk=report.result["report_id"]).body
    assert body["email"]["completed"] == 3
    assert body["email"]["failure_rate"] == 0.0
    assert body["email"]["avg_duration_ms"] is not None
    stats_id = add_job(QueueName.ANALYTICS, "hourly-stats", {})
    wait_state(stats_id, "completed")
    assert QueueStats.objects.filter(queue="email").count() == 1
    cleanup_id = add_job(QueueName.ANALYTICS, "daily-cleanup", {})
    cleanup = wait_state(cleanup_id, "completed")
    assert set(cleanup.result) == {"jobs", "stats", "notifications", "email_records"}
