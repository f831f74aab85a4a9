"""The templated messages of ``tasks.fastpath.wire`` are byte for byte what Celery itself would send."""

from celery import current_app
from celery.app.task import Task

from tasks.fastpath.wire import MessageBuilder, _Recorder
from tasks.jobs.routing import broker_priority
from tasks.processors.email import send_welcome_email

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


class RecordingProducer(_Recorder):
    supports_batch_publish = False


def celerys_message(job_id: str, data: dict, priority: int):
    recorder = _Recorder(current_app.connection_for_write())
    Task.apply_async(send_welcome_email, args=(), kwargs=data, task_id=job_id, queue="email",
                     routing_key="email", priority=priority, producer=recorder)
    body, options = recorder.published
    declare = [entity.name for entity in options.pop("declare")]
    return body, options, declare


def test_given_two_jobs_when_built_from_a_template_then_each_equals_celerys_own_message():
    producer = RecordingProducer(current_app.connection_for_write())
    builder = MessageBuilder(current_app, producer, batched=False)
    for job_id, data, priority in [("job-1", EMAIL, 3), ("job-2", {**EMAIL, "to": "b@x.org"}, 1)]:
        builder.send(job_id, send_welcome_email.name, "email", data, priority)
        native = broker_priority(priority, current_app.conf.broker_url)  # Redis 0 first, AMQP 5
        body, options, declare = celerys_message(job_id, data, native)
        our_body, our_options = producer.published
        assert [entity.name for entity in our_options.pop("declare")] == declare
        assert (our_body, our_options) == (body, options)
