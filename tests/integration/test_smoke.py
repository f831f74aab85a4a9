
from tasks.models import Job
from tasks.queues import QueueName, add_job
from tests.processes import wait_for
from tests.testapp.models import Execution


def test_job_runs_once_end_to_end(service):
    job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "smoke"})
    wait_for(lambda: Job.objects.get(pk=job_id).state == "completed", 30, message="completion")
    job = Job.objects.get(pk=job_id)
    assert job.result == {"key": "smoke"}
    assert job.attempts_made == 1
    assert job.worker.startswith("shared@")
    assert Execution.objects.filter(key="smoke").count() == 1
