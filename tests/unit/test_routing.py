from celery import current_app

from tasks.jobs.config import JobPriority, QueueName
from tasks.jobs.routing import broker_priority, route_task, split_task_name


def test_redis_runs_lower_numbers_first_with_one_step_per_level():
    mapped = [broker_priority(p, "redis://x/1") for p in JobPriority]
    assert mapped == [0, 1, 2, 3, 4]
    steps = current_app.conf.broker_transport_options["priority_steps"]
    assert steps == [0, 1, 2, 3, 4]


def test_rabbitmq_runs_higher_numbers_first_within_max_priority():
    mapped = [broker_priority(p, "amqp://guest@x//") for p in JobPriority]
    assert mapped == [5, 4, 3, 2, 1]
    for queue in current_app.conf.task_queues:
        assert queue.queue_arguments["x-max-priority"] == 5


def test_every_registered_job_task_routes_to_a_declared_queue():
    declared = {q.name for q in current_app.conf.task_queues}
    job_tasks = [name for name in current_app.tasks if split_task_name(name)]
    assert len(job_tasks) >= 10
    for name in job_tasks:
        route = route_task(name, (), {}, {})
        assert route["queue"] in declared, name


def test_foreign_task_names_are_not_routed():
    assert route_task("celery.chord_unlock", (), {}, {}) is None
    assert split_task_name("nope.thing") is None


def test_missing_queues_are_not_created_and_only_json_is_accepted():
    conf = current_app.conf
    assert conf.task_create_missing_queues is False
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert {q.name for q in conf.task_queues} == {q.value for q in QueueName}


def test_a_celery_task_option_jobs_cannot_honour_is_refused_when_declared():
    import pytest

    from tasks.jobs.config import QueueName
    from tasks.worker.registry import processor

    with pytest.raises(TypeError, match=r"\['autoretry_for', 'max_retries'\] are not honoured"):
        processor(QueueName.ANALYTICS, "never-declared", autoretry_for=(KeyError,),
                  max_retries=5)
