"""Django's task API backend: mapping, validation at enqueue, results from Job rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist

from tasks.integrations.django_tasks import RUNNER_JOB_NAME, job_priority
from tasks.jobs.config import JobPriority
from tasks.jobs.errors import (
    InvalidArgumentsError,
    PayloadNotJSONError,
    PayloadTooLargeError,
    PermanentJobError,
)
from tasks.models import Job, JobState
from tasks.processors.django_task import run_django_task
from tasks.worker.job import JobContext
from tests.testapp import standard_tasks

BACKEND = "tasks.integrations.django_tasks.IntelGraphTaskBackend"
SAMPLE = "tests.testapp.standard_tasks"


@pytest.fixture
def service_backend(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"DEFAULT_QUEUE": "analytics"}}}
    return default_task_backend


def direct_job(**data) -> JobContext:
    return JobContext(id="direct-1", queue="analytics", name=RUNNER_JOB_NAME, data=data,
                      attached=False)


# -- priority ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(100, JobPriority.CRITICAL), (50, JobPriority.CRITICAL), (49, JobPriority.HIGH),
     (1, JobPriority.HIGH), (0, JobPriority.NORMAL), (-1, JobPriority.LOW),
     (-49, JobPriority.LOW), (-50, JobPriority.BACKGROUND), (-100, JobPriority.BACKGROUND)],
)
def test_priority_bands(priority, expected):
    assert job_priority(priority) is expected


def test_priority_mapping_keeps_order_and_centres_on_the_default():
    mapped = [job_priority(p) for p in range(100, -101, -1)]
    assert mapped == sorted(mapped)  # larger django priority never runs later
    assert job_priority(1) < job_priority(0) < job_priority(-1)


# -- validation at decoration and enqueue --------------------------------------


def test_an_undeclared_queue_is_refused_when_the_task_is_declared(service_backend):
    with pytest.raises(InvalidTaskError, match="queue 'emial' is not one of: email, "):
        task(queue_name="emial")(standard_tasks.not_a_task)


def test_queue_default_needs_a_configured_target(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND}}
    with pytest.raises(InvalidTaskError, match="DEFAULT_QUEUE"):
        standard_tasks.add.using(priority=1)


@pytest.mark.django_db
def test_enqueue_writes_a_job_on_the_mapped_queue_and_priority(service_backend):
    result = standard_tasks.add.using(queue_name="email", priority=60).enqueue(2, b=3)

    job = Job.objects.get(pk=result.id)
    assert (job.queue, job.name, job.state) == ("email", RUNNER_JOB_NAME, JobState.WAITING)
    assert job.priority == JobPriority.CRITICAL
    assert job.data == {"task": f"{SAMPLE}.add", "args": [2], "kwargs": {"b": 3},
                        "queue_name": "email", "priority": 60}
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs) == ([2], {"b": 3})


@pytest.mark.django_db
def test_queue_default_goes_to_the_configured_queue(service_backend):
    result = standard_tasks.add.enqueue(1, 1)
    assert Job.objects.get(pk=result.id).queue == "analytics"


@pytest.mark.django_db
def test_run_after_becomes_a_delay_held_in_the_database(service_backend):
    run_after = timezone.now() + timedelta(minutes=10)
    result = standard_tasks.add.using(run_after=run_after).enqueue(1, 2)

    job = Job.objects.get(pk=result.id)
    assert job.state == JobState.DELAYED
    assert abs((job.run_at - run_after).total_seconds()) < 1
    assert default_task_backend.get_result(result.id).task.run_after is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [((1,), {}, InvalidArgumentsError),                  # missing b
     ((1, 2, 3), {}, InvalidArgumentsError),             # one too many
     ((1,), {"c": 2}, InvalidArgumentsError),            # unknown keyword
     ((object(), 2), {}, PayloadNotJSONError),
     ((float("nan"), 2), {}, PayloadNotJSONError),
     (("x" * 70_000, 2), {}, PayloadTooLargeError)],
)
def test_bad_arguments_are_refused_and_nothing_is_written(service_backend, args, kwargs, error):
    with pytest.raises(error):
        standard_tasks.add.enqueue(*args, **kwargs)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_context_parameter_is_not_an_argument(service_backend):
    with pytest.raises(InvalidArgumentsError):
        standard_tasks.whoami.enqueue()
    result = standard_tasks.whoami.enqueue("me")
    assert Job.objects.get(pk=result.id).data["args"] == ["me"]


# -- results read from the job row ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "status"),
    [(JobState.WAITING, TaskResultStatus.READY), (JobState.DELAYED, TaskResultStatus.READY),
     (JobState.ACTIVE, TaskResultStatus.RUNNING),
     (JobState.COMPLETED, TaskResultStatus.SUCCESSFUL),
     (JobState.FAILED, TaskResultStatus.FAILED), (JobState.CANCELLED, TaskResultStatus.FAILED)],
)
def test_status_follows_the_job_state(service_backend, state, status):
    result = standard_tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(state=state)
    assert standard_tasks.add.get_result(result.id).status == status


@pytest.mark.django_db
def test_a_completed_job_gives_its_return_value_and_times(service_backend):
    result = standard_tasks.add.using(priority=-70).enqueue(1, 2)
    now = timezone.now()
    Job.objects.filter(pk=result.id).update(
        state=JobState.COMPLETED, result=3, started_at=now, finished_at=now,
        attempts_made=1, worker="fast@host")

    read = standard_tasks.add.get_result(result.id)
    assert read.return_value == 3
    assert read.started_at == now and read.finished_at == now
    assert read.worker_ids == ["fast@host"] and read.attempts == 1
    assert read.task.priority == -70 and read.task.func is standard_tasks.add.func
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3


@pytest.mark.django_db
def test_failed_attempts_become_task_errors_with_the_exception_class(service_backend):
    result = standard_tasks.fail.enqueue("boom")
    entry = {"attempt": 1, "error": "LookupError: boom",
             "traceback": "Traceback (most recent call last):\n  ...\nLookupError: boom\n"}
    custom = {"attempt": 2, "error": "JobCancelled: x",
              "traceback": "Traceback ...\ntasks.jobs.errors.JobCancelled: x\n"}
    Job.objects.filter(pk=result.id).update(state=JobState.FAILED, errors=[entry, custom])

    read = default_task_backend.get_result(result.id)
    assert [e.exception_class.__name__ for e in read.errors] == ["LookupError", "JobCancelled"]
    assert "LookupError: boom" in read.errors[0].traceback
    with pytest.raises(ValueError, match="failed"):
        read.return_value  # noqa: B018


@pytest.mark.django_db
def test_a_cancelled_job_reads_as_failed_by_cancellation(service_backend):
    result = standard_tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(state=JobState.CANCELLED)
    errors = default_task_backend.get_result(result.id).errors
    assert errors[-1].exception_class_path == "tasks.jobs.errors.JobCancelled"


@pytest.mark.django_db
def test_other_jobs_and_unknown_ids_are_not_results(service_backend):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-job")


def test_backend_check_reports_undeclared_queues(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["email", "bulk"]}}
    messages = list(default_task_backend.check())
    assert [m.id for m in messages] == ["tasks.E101"]
    assert "'bulk'" in messages[0].msg


def test_backend_declares_its_features(service_backend):
    assert service_backend.supports_defer and service_backend.supports_priority
    assert service_backend.supports_get_result and service_backend.supports_async_task


# -- the worker-side runner, called directly -----------------------------------


def test_runner_calls_the_task_function():
    assert run_django_task(direct_job(), f"{SAMPLE}.add", [2], {"b": 5}) == 7


def test_runner_runs_coroutines():
    assert run_django_task(direct_job(), f"{SAMPLE}.double", [21]) == 42


def test_runner_passes_the_context_first():
    value = run_django_task(direct_job(), f"{SAMPLE}.whoami", ["me"])
    assert value == {"label": "me", "id": "direct-1", "attempt": 1}


@pytest.mark.parametrize("path", [f"{SAMPLE}.not_a_task", "os.system", f"{SAMPLE}.missing",
                                  "no_such_module.fn"])
def test_runner_refuses_anything_but_a_decorated_task(path):
    with pytest.raises(PermanentJobError):
        run_django_task(direct_job(), path, ["echo hi"])


def test_runner_fails_a_non_json_return_value_for_good():
    with pytest.raises(PermanentJobError, match="not JSON"):
        run_django_task(direct_job(), f"{SAMPLE}.returns_object")
