"""Django's task API end to end: ``@task`` functions run on the real worker as jobs."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend

from tasks.integrations.django_tasks import RUNNER_JOB_NAME
from tasks.jobs.config import JobPriority
from tasks.models import Job
from tests.integration.helpers import wait_state
from tests.testapp import standard_tasks
from tests.testapp.models import Execution

BACKEND = "tasks.integrations.django_tasks.IntelGraphTaskBackend"


@pytest.fixture
def tasks_api(settings, service):
    """The service backend as ``TASKS["default"]`` in this process.

    The worker needs no ``TASKS`` setting for these tests: the sample tasks use
    the default queue and priority, and the runner imports them as they are.
    """
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"DEFAULT_QUEUE": "analytics"}}}
    return default_task_backend


def test_a_task_runs_on_the_worker_and_its_result_reads_back(tasks_api):
    result = standard_tasks.add.using(queue_name="data-processing", priority=10).enqueue(2, 3)

    job = Job.objects.get(pk=result.id)
    assert (job.queue, job.name, job.priority) == ("data-processing", RUNNER_JOB_NAME,
                                                   JobPriority.HIGH)
    wait_state(result.id, "completed")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids[0].startswith("shared@")
    assert result.started_at <= result.finished_at


def test_the_task_context_and_async_tasks_work_on_the_worker(tasks_api):
    context = standard_tasks.whoami.using(queue_name="email").enqueue("me")
    coroutine = standard_tasks.double.enqueue(21)

    wait_state(context.id, "completed")
    wait_state(coroutine.id, "completed")
    assert standard_tasks.whoami.get_result(context.id).return_value == {
        "label": "me", "id": context.id, "attempt": 1}
    assert standard_tasks.double.get_result(coroutine.id).return_value == 42


def test_a_raising_task_fails_once_with_its_error(tasks_api):
    result = standard_tasks.fail.using(queue_name="notifications").enqueue("no such row")

    job = wait_state(result.id, "failed")
    assert job.attempts_made == 1  # a LookupError is a bug, not a transient error
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is LookupError
    assert "no such row" in result.errors[0].traceback


def test_run_after_holds_the_job_until_then(tasks_api):
    run_after = timezone.now() + timedelta(seconds=2)
    result = standard_tasks.record.using(run_after=run_after).enqueue("later")

    time.sleep(1)
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY
    assert not Execution.objects.filter(key="later").exists()
    job = wait_state(result.id, "completed")
    assert job.started_at >= run_after
    assert Execution.objects.filter(key="later").count() == 1


def test_an_enqueue_in_a_rolled_back_transaction_sends_nothing(tasks_api):
    with pytest.raises(RuntimeError), transaction.atomic():
        result = standard_tasks.record.enqueue("rolled-back")
        raise RuntimeError("the view failed")

    time.sleep(1.5)  # longer than the relay grace of the test promoter
    assert not Job.objects.filter(pk=result.id).exists()
    assert not Execution.objects.filter(key="rolled-back").exists()
