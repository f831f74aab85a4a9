"""No caller-chosen targets (issue 13, item 3): URLs, hosts, import paths and job names.

Before: a password-reset job took ``base_url`` from its data (a valid reset
token mailed to the caller's host), a webhook went to any URL, the
``django-task`` processor imported any module path before checking it, and
the API enqueued any job.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from tasks.enqueue.publishing import message_for, publish
from tasks.jobs import errors, permissions
from tasks.jobs.ids import new_job_id
from tasks.models import Job, Notification
from tasks.processors.email import send_password_reset_email
from tasks.queues import QueueName, add_job
from tasks.services.notifications import check_webhook_url
from tests.integration.helpers import queue_length, staff_user, wait_state
from tests.testapp.models import Execution

# -- emails: links from settings only ---------------------------------------------


def test_a_reset_email_cannot_be_pointed_at_another_host(db):
    user = User.objects.create_user("ada", "ada@example.com", "pw-12345678")
    with pytest.raises(errors.InvalidArgumentsError, match="unexpected keyword argument 'base_url'"):
        send_password_reset_email.delay(user.pk, base_url="https://attacker.example")
    with pytest.raises(errors.InvalidArgumentsError, match="base_url"):
        add_job(QueueName.EMAIL, "send-password-reset-email",
                {"user_id": user.pk, "base_url": "https://attacker.example"})
    assert Job.objects.count() == 0


def test_an_old_row_with_a_base_url_fails_instead_of_mailing_it(service, service_tmp):
    """A row written before the change (or by hand) carries ``base_url``: nothing is sent."""
    user = User.objects.create_user("ada", "ada@example.com", "pw-12345678")
    with transaction.atomic():
        job_id = add_job(QueueName.EMAIL, "send-password-reset-email", {"user_id": user.pk})
        Job.objects.filter(pk=job_id).update(
            data={"user_id": user.pk, "base_url": "https://attacker.example"})
    job = wait_state(job_id, "failed")  # the row's data is what runs: refused, not retried
    assert job.attempts_made == 1 and "base_url" in job.errors[-1]["error"]
    mail_dir = service_tmp / "mail"
    sent = [p.read_text() for p in mail_dir.glob("*")] if mail_dir.exists() else []
    assert not any("attacker.example" in m for m in sent)


# -- webhooks: allowed hosts only -------------------------------------------------


@pytest.mark.parametrize(
    "hosts, url, allowed",
    [
        (["hooks.example.com"], "https://hooks.example.com/in", True),
        (["hooks.example.com"], "http://HOOKS.example.com:80/in", True),
        (["hooks.example.com"], "https://hooks.example.com:8443/in", False),
        (["hooks.example.com:8443"], "https://hooks.example.com:8443/in", True),
        (["127.0.0.1:*"], "http://127.0.0.1:9/x", True),
        (["hooks.example.com"], "https://hooks.example.com@evil.example/in", False),
        (["hooks.example.com"], "https://user:pw@hooks.example.com/in", False),
        (["hooks.example.com"], "https://hooks.example.com.evil.example/in", False),
        (["hooks.example.com"], "ftp://hooks.example.com/in", False),
        (["hooks.example.com"], "file:///etc/passwd", False),
        (["hooks.example.com"], "https://hooks.example.com:99999/", False),
        (["[::1]:8080"], "http://[::1]:8080/x", True),
        ([], "https://hooks.example.com/in", False),
    ],
)
def test_webhook_hosts_are_matched_as_urllib_will_connect(settings, hosts, url, allowed):
    settings.NOTIFY_WEBHOOK_HOSTS = hosts
    if allowed:
        assert check_webhook_url(url) == url
    else:
        with pytest.raises(errors.WebhookNotAllowedError, match="refused"):
            check_webhook_url(url)


def test_a_webhook_to_another_host_is_refused_at_enqueue(db, settings):
    settings.NOTIFY_WEBHOOK_HOSTS = ["hooks.example.com"]
    with pytest.raises(errors.WebhookNotAllowedError, match="host 169.254.169.254:80 is not in"):
        add_job(QueueName.NOTIFICATIONS, "notify-user",
                {"user_id": None, "message": "x", "webhook_url": "http://169.254.169.254/latest"})
    settings.NOTIFY_WEBHOOK_HOSTS = []
    with pytest.raises(errors.WebhookNotAllowedError, match="webhooks are off"):
        add_job(QueueName.NOTIFICATIONS, "notify-user",
                {"user_id": None, "message": "x", "webhook_url": "https://hooks.example.com/"})
    assert Job.objects.count() == 0
    # without a webhook the job is fine
    add_job(QueueName.NOTIFICATIONS, "notify-user", {"user_id": None, "message": "x"})


class _Receiver:
    """An HTTP server on ``host``: counts POSTs; answers 204, or a redirect to ``redirect``."""

    def __init__(self, host: str, redirect: str | None = None) -> None:
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers["Content-Length"])
                receiver.received.append(json.loads(self.rfile.read(length)))
                self.send_response(302 if redirect else 204)
                if redirect:
                    self.send_header("Location", redirect)
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = HTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_the_worker_refuses_a_host_its_allow_list_does_not_hold(service, settings):
    """The worker checks again (its settings allow 127.0.0.1:* only): a row whose host
    was allowed where it was enqueued, or written another way, fails for good."""
    other = _Receiver("127.0.0.2")
    try:
        settings.NOTIFY_WEBHOOK_HOSTS = ["127.0.0.2:*"]  # this process only
        job_id = add_job(QueueName.NOTIFICATIONS, "notify-user",
                         {"user_id": None, "message": "x", "webhook_url": other.url},
                         attempts=3)
        job = wait_state(job_id, "failed")
    finally:
        other.close()
    assert job.attempts_made == 1
    assert "PermanentJobError: webhook url" in job.errors[-1]["error"]
    assert "is not in NOTIFY_WEBHOOK_HOSTS" in job.errors[-1]["error"]
    assert other.received == [] and not Notification.objects.filter(job_id=job_id).exists()


def test_a_webhook_redirect_is_not_followed(service):
    elsewhere = _Receiver("127.0.0.2")
    redirecting = _Receiver("127.0.0.1", redirect=elsewhere.url)
    try:
        job_id = add_job(QueueName.NOTIFICATIONS, "notify-user",
                         {"user_id": None, "message": "x", "webhook_url": redirecting.url},
                         attempts=3)
        job = wait_state(job_id, "failed")
    finally:
        redirecting.close()
        elsewhere.close()
    assert len(redirecting.received) == 1 and elsewhere.received == []
    assert job.attempts_made == 1 and "redirects are not followed" in job.errors[-1]["error"]


# -- django-task: registered @task functions only, nothing imported first ---------------

MARKER = "tests.testapp.import_marker"


@pytest.mark.parametrize("path", ["os.system", f"{MARKER}.boom", "tests.testapp.standard_tasks."
                                  "not_a_task", "subprocess.getoutput", 42])
def test_the_django_task_path_is_refused_at_enqueue_without_importing(db, path):
    with pytest.raises(errors.InvalidArgumentsError, match="not a registered @task|not a string"):
        add_job(QueueName.ANALYTICS, "django-task", {"task": path, "args": ["id"]})
    assert MARKER not in sys.modules
    assert Job.objects.count() == 0


def test_the_worker_refuses_an_unregistered_path_without_importing_it(service):
    """A row naming a module path (written past the enqueue check): refused for good,
    and the module's code never ran in the worker."""
    job = Job.objects.create(
        id=new_job_id(), queue="analytics", name="django-task",
        data={"task": f"{MARKER}.boom", "args": [], "kwargs": {}},
        state="waiting", max_attempts=3, created_at=_now())
    publish([message_for(job)])
    failed = wait_state(job.id, "failed")
    assert failed.attempts_made == 1
    assert "is not a registered @task" in failed.errors[-1]["error"]
    assert not Execution.objects.filter(key__startswith="import-marker").exists()


def _now():
    from django.utils import timezone

    return timezone.now()


# -- the HTTP API: allowed jobs only, every bad value a 400 --------------------------


@pytest.fixture
def staff_client(client):
    """Staff allowed to enqueue through the API: the allow-list is what these tests probe."""
    client.force_login(staff_user("ops", permissions.ENQUEUE, permissions.VIEW))
    return client


def _post(client, body):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/jobs", data=raw, content_type="application/json")


@pytest.mark.parametrize(
    "queue, name, data",
    [
        ("email", "send-password-reset-email", {"user_id": 1}),
        ("email", "send-welcome-email", {"to": "x@example.com", "subject": "s", "body": "b"}),
        ("analytics", "django-task", {"task": "os.system", "args": ["id"]}),
        ("analytics", "daily-cleanup", {}),
    ],
)
def test_the_api_refuses_jobs_outside_its_allow_list_with_403(db, staff_client, queue, name,
                                                               data):
    response = _post(staff_client, {"queue": queue, "name": name, "data": data})
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["kind"] == "JobNotAllowedError"
    assert f"job '{queue}.{name}' cannot be enqueued through the API" in body["error"]
    assert Job.objects.count() == 0 and queue_length(queue) == 0


def test_the_api_enqueues_allowed_jobs_and_the_setting_decides(db, staff_client, settings):
    assert _post(staff_client, {"queue": "notifications", "name": "send-reminder",
                                "data": {"message": "hi"}}).status_code == 201
    body = {"queue": "email", "name": "send-welcome-email",
            "data": {"to": "x@example.com", "subject": "s", "body": "b"}}
    assert _post(staff_client, body).status_code == 403
    settings.JOB_API_ALLOWED = ["email.send-welcome-email"]
    assert _post(staff_client, body).status_code == 201
    assert _post(staff_client, {"queue": "notifications", "name": "send-reminder",
                                "data": {"message": "hi"}}).status_code == 403
    assert Job.objects.count() == 2


REMINDER = {"queue": "notifications", "name": "send-reminder", "data": {"message": "x"}}


def _with(**options) -> dict:
    return {**REMINDER, "options": options}


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "body, kind, message",
    [
        ('{"queue": "notifications", "name": "send-reminder", "data": {"message": "x"}, '
         '"options": {"delay": 1e12}}', "InvalidDelayError", "delay 1000000000000.0 is invalid"),
        (_with(attempts=2**63), "InvalidAttemptsError", "from 1 to 100"),
        (_with(attempts=2**70), "InvalidAttemptsError", "from 1 to 100"),
        (_with(attempts=10**9), "InvalidAttemptsError", "from 1 to 100"),
        ('{"queue": "notifications", "name": "send-reminder", "data": {"message": "x"}, '
         '"options": {"backoff": {"type": "fixed", "delay": Infinity}}}', "InvalidBackoffError",
         "delay must be milliseconds"),
        ('{"queue": "notifications", "name": "send-reminder", "data": {"message": "x"}, '
         '"options": {"backoff": {"type": "fixed", "delay": NaN}}}', "InvalidBackoffError",
         "delay must be milliseconds"),
        (_with(backoff={"type": "fixed", "delay": 10**20}), "InvalidBackoffError", "one day"),
        ('{"queue": "notifications", "name": "send-reminder", "data": {"message": "x"}, '
         '"options": {"delay": NaN}}', "InvalidDelayError", "delay nan"),
        ('{"queue": "notifications", "name": "send-reminder", "data": {"message": "x"}, '
         '"options": {"job_id": "a\\ud800b"}}', "InvalidJobIdError", "printable"),
        (_with(job_id="a\x00b"), "InvalidJobIdError", "printable"),
        (_with(job_id="a\nb"), "InvalidJobIdError", "printable"),
        (_with(job_id="a/status.json"), "InvalidJobIdError", "without '/'"),
        (_with(job_id="x" * 256), "InvalidJobIdError", "1 to 255"),
        ('{"queue": "notifications", "name": "send-reminder", "data": {"message": '
         + "[" * 100_000 + "]" * 100_000 + "}}", "PayloadTooDeepError",
         "the request body nests objects or arrays deeper than 64"),
        ("[" * 100_000 + "]" * 100_000, "PayloadTooDeepError", "the request body"),
        ({**REMINDER, "data": {"message": "x", "n": _nested(70)}}, "PayloadTooDeepError",
         "deeper than 64"),
        ({"queue": ["email"], "name": {"x": 1}}, "UnknownQueueError", "queue ['email']"),
        ({"queue": "notifications", "name": ["send-reminder"]}, "UnknownJobNameError",
         "job name ['send-reminder']"),
        (b"\xff\xfe{}", "InvalidRequestError", "not JSON"),
        ('"just a string"', "InvalidRequestError", "must be a JSON object"),
    ],
)
def test_every_bad_value_through_the_api_is_a_400_naming_it(db, staff_client, body, kind,
                                                             message):
    response = _post(staff_client, body)
    assert response.status_code == 400, response.content[:300]
    answer = response.json()
    assert answer["kind"] == kind and message in answer["error"], answer
    assert len(answer["error"]) < 500
    assert Job.objects.count() == 0
