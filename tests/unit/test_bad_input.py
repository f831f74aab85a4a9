"""Every kind of bad input: a precise exception, nothing written, nothing published."""

from datetime import timedelta

import pytest

from tasks.jobs import errors
from tasks.models import Job
from tasks.processors.email import send_welcome_email
from tasks.queues import JobPriority, QueueName, add_job, add_repeatable_job


@pytest.fixture
def nothing_enqueued(db, monkeypatch):
    published = []
    monkeypatch.setattr("tasks.enqueue.publishing.publish", lambda messages: published.extend(messages))
    monkeypatch.setattr("tasks.enqueue.records.publish_on_commit", lambda messages: published.extend(messages))
    yield published
    assert Job.objects.count() == 0
    assert published == []


EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: add_job("emial", "send-welcome-email", EMAIL), errors.UnknownQueueError,
         "queue 'emial' is not one of: email, notifications, data-processing, analytics"),
        (lambda: add_job(QueueName.EMAIL, "send-welcom", EMAIL), errors.UnknownJobNameError,
         "job name 'send-welcom' is not registered on queue 'email'"),
        (lambda: add_job(QueueName.EMAIL, "process-data", {}), errors.UnknownJobNameError,
         "not registered on queue 'email'"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", {"to": object()}),
         errors.PayloadNotJSONError, "not JSON-serialisable"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", {"to": float("nan")}),
         errors.PayloadNotJSONError, "not JSON-serialisable"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", ["a"]),
         errors.PayloadNotJSONError, "expected an object"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", {**EMAIL, "body": "x" * 70_000}),
         errors.PayloadTooLargeError, "over the 65536-byte limit; store a reference"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, delay=-1),
         errors.InvalidDelayError, "delay -1 is invalid"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, delay=timedelta(seconds=-5)),
         errors.InvalidDelayError, "delay"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, delay="1h"),
         errors.InvalidDelayError, "delay '1h' is invalid"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, priority=0),
         errors.InvalidPriorityError, "priority 0 is outside 1"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, priority=6),
         errors.InvalidPriorityError, "priority 6"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, priority="high"),
         errors.InvalidPriorityError, "priority 'high'"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, attempts=0),
         errors.InvalidAttemptsError, "attempts 0 is invalid"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, backoff={"type": "linear"}),
         errors.InvalidBackoffError, "type must be one of"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", {"colour": "red"}),
         errors.InvalidArgumentsError, "unexpected keyword argument 'colour'"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, job_id=""),
         errors.InvalidJobIdError, "job id '' is invalid"),
        (lambda: send_welcome_email.delay(1, 2, 3, 4, 5), errors.InvalidArgumentsError,
         "too many positional arguments"),
        (lambda: send_welcome_email.apply_async(kwargs=EMAIL, priority=9),
         errors.InvalidPriorityError, "priority 9"),
        (lambda: send_welcome_email.apply_async(kwargs=EMAIL, countdown=-3),
         errors.InvalidDelayError, "delay -3"),
    ],
)
def test_bad_input_is_refused_at_the_call_site(nothing_enqueued, call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")) as caught:
        call()
    assert isinstance(caught.value, errors.JobInputError)


@pytest.mark.parametrize(
    "cron, message",
    [
        ("0 2 * *", "expected 5 fields, got 4"),
        ("61 * * * *", "invalid"),
        ("0 25 * * *", "invalid"),
        ("* * * * * *", "expected 5 fields, got 6"),
        ("every day", "expected 5 fields"),
        (12, "give a string"),
    ],
)
def test_bad_cron_is_refused(db, cron, message):
    from django_celery_beat.models import PeriodicTask

    with pytest.raises(errors.InvalidCronError, match=message):
        add_repeatable_job(QueueName.ANALYTICS, "daily-cleanup", {}, cron)
    assert PeriodicTask.objects.count() == 0


def test_priority_enum_values_match_the_seed_design():
    assert [p.value for p in JobPriority] == [1, 2, 3, 4, 5]
    assert JobPriority.NORMAL == 3
