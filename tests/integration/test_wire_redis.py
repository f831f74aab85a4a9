"""On Redis, a pipelined chunk (or a single direct push) writes exactly the message ``Producer.publish`` writes."""

import base64
import json

from celery import current_app

from tasks.fastpath.wire import MessageBuilder
from tasks.processors.email import send_welcome_email
from tasks.processors.notifications import notify_user

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


def _queued(client, key: str) -> dict:
    """The oldest message of the list, its body decoded (the JSON's spacing may differ)."""
    message = json.loads(client.rpop(key))
    assert message["properties"].pop("delivery_tag")  # a fresh uuid per message
    assert message["properties"]["body_encoding"] == "base64"
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_given_redis_when_a_chunk_is_pipelined_then_its_message_equals_kombus(spare_db):
    with current_app.connection_for_write(spare_db) as connection:
        producer = current_app.amqp.Producer(connection)
        plain = MessageBuilder(current_app, producer, batched=False)
        plain.send("wire-1", send_welcome_email.name, "email", EMAIL, 2)
        piped = MessageBuilder(current_app, producer, batched=True)
        assert piped.batching, "the Redis transport should allow pipelined publishes"
        with piped.chunk():
            piped.send("wire-1", send_welcome_email.name, "email", EMAIL, 2)
            assert piped._pipeline is not None
        single = MessageBuilder(current_app, producer, batched=False)
        with single.chunk():  # one message: a direct LPUSH, no pipeline
            single.send("wire-1", send_welcome_email.name, "email", EMAIL, 2)
        spliced = MessageBuilder(current_app, producer, batched=True)
        with spliced.chunk():  # the enqueue's own JSON of the data, spliced into the body
            spliced.send("wire-1", send_welcome_email.name, "email", EMAIL, 2,
                         data_json=json.dumps(EMAIL, separators=(",", ":")))
        with producer.channel.conn_or_acquire() as client:
            key = producer.channel._q_for_pri("email", 1)
            assert client.llen(key) == 4
            messages = [_queued(client, key) for _ in range(4)]
            client.flushdb()
    assert messages[0]["headers"]["id"] == "wire-1"
    assert messages[0]["body"] == [[], EMAIL, messages[0]["body"][2]]
    for message in messages[1:]:
        assert message == messages[0]


def test_given_a_chunk_of_many_jobs_when_pushed_then_each_list_gets_them_oldest_first(spare_db):
    """One LPUSH per list with all of its messages: the first sent is the first popped."""
    with current_app.connection_for_write(spare_db) as connection:
        producer = current_app.amqp.Producer(connection)
        builder = MessageBuilder(current_app, producer, batched=True)
        with builder.chunk():
            for i in range(6):
                builder.send(f"job-{i}", send_welcome_email.name, "email", EMAIL, 1 if i % 2 else 5)
            assert builder._pipeline is not None
        with producer.channel.conn_or_acquire() as client:
            critical, background = (producer.channel._q_for_pri("email", level) for level in (0, 4))
            popped = {key: [_queued(client, key)["headers"]["id"] for _ in range(3)]
                      for key in (critical, background)}
            client.flushdb()
    assert popped == {critical: ["job-1", "job-3", "job-5"], background: ["job-0", "job-2", "job-4"]}


def test_given_a_chunk_of_two_queues_when_pushed_then_each_job_is_on_its_own_queues_list(spare_db):
    """A promoter batch or an ``add_bulk`` mixes queues: same priority, different lists."""
    with current_app.connection_for_write(spare_db) as connection:
        producer = current_app.amqp.Producer(connection)
        builder = MessageBuilder(current_app, producer, batched=True)
        with builder.chunk():
            builder.send("mail-1", send_welcome_email.name, "email", EMAIL, 3)
            builder.send("note-1", notify_user.name, "notifications",
                         {"user_id": 1, "message": "hi"}, 3)
        with producer.channel.conn_or_acquire() as client:
            email, notifications = (producer.channel._q_for_pri(queue, 2)
                                    for queue in ("email", "notifications"))
            lengths = (client.llen(email), client.llen(notifications))
            ids = (_queued(client, email)["headers"]["id"],
                   _queued(client, notifications)["headers"]["id"])
            client.flushdb()
    assert lengths == (1, 1)
    assert ids == ("mail-1", "note-1")
