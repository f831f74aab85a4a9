"""Fast path ``redis-push``: a pipelined chunk (or a single direct push) writes exactly the
message ``Producer.publish`` writes."""

import base64
import json

from celery import current_app

from tasks.fastpath import redis_clients, redis_push, templates
from tasks.fastpath.registry import Fastpaths
from tasks.fastpath.sender import FastSender
from tasks.processors.email import send_welcome_email
from tasks.processors.notifications import notify_user

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


def _paths() -> Fastpaths:
    """Every fast path the push needs, whatever JOB_FASTPATH says for this run."""
    paths = Fastpaths(frozenset({redis_clients.PATH.name, templates.PATH.name,
                                 redis_push.PATH.name}))
    for path in (redis_clients.PATH, templates.PATH, redis_push.PATH):
        assert paths.settle(path)
    return paths


def fast_sender(producer, batched: bool) -> FastSender:
    return FastSender(current_app, producer, batched, _paths(), shared={})


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
        plain = fast_sender(producer, batched=False)
        plain.send("wire-1", send_welcome_email.name, "email", EMAIL, 2)
        piped = fast_sender(producer, batched=True)
        assert piped.batching, "the Redis transport should allow pipelined publishes"
        with piped.chunk():
            piped.send("wire-1", send_welcome_email.name, "email", EMAIL, 2)
            assert piped._pipeline is not None
        single = fast_sender(producer, batched=False)
        with single.chunk():  # one message: a direct LPUSH, no pipeline
            single.send("wire-1", send_welcome_email.name, "email", EMAIL, 2)
        spliced = fast_sender(producer, batched=True)
        with spliced.chunk():  # the enqueue's own JSON of the data, spliced into the body
            spliced.send("wire-1", send_welcome_email.name, "email", EMAIL, 2,
                         data_json=json.dumps(EMAIL, separators=(",", ":")))
        with producer.channel.conn_or_acquire() as client:
            key = redis_push.list_key(producer.channel, "email", 1)
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
        builder = fast_sender(producer, batched=True)
        with builder.chunk():
            for i in range(6):
                builder.send(f"job-{i}", send_welcome_email.name, "email", EMAIL, 1 if i % 2 else 5)
            assert builder._pipeline is not None
        with producer.channel.conn_or_acquire() as client:
            critical, background = (redis_push.list_key(producer.channel, "email", level)
                                    for level in (0, 4))
            popped = {key: [_queued(client, key)["headers"]["id"] for _ in range(3)]
                      for key in (critical, background)}
            client.flushdb()
    assert popped == {critical: ["job-1", "job-3", "job-5"], background: ["job-0", "job-2", "job-4"]}


def test_given_a_chunk_of_two_queues_when_pushed_then_each_job_is_on_its_own_queues_list(spare_db):
    """A promoter batch or an ``add_bulk`` mixes queues: same priority, different lists."""
    with current_app.connection_for_write(spare_db) as connection:
        producer = current_app.amqp.Producer(connection)
        builder = fast_sender(producer, batched=True)
        with builder.chunk():
            builder.send("mail-1", send_welcome_email.name, "email", EMAIL, 3)
            builder.send("note-1", notify_user.name, "notifications",
                         {"user_id": 1, "message": "hi"}, 3)
        with producer.channel.conn_or_acquire() as client:
            email, notifications = (redis_push.list_key(producer.channel, queue, 2)
                                    for queue in ("email", "notifications"))
            lengths = (client.llen(email), client.llen(notifications))
            ids = (_queued(client, email)["headers"]["id"],
                   _queued(client, notifications)["headers"]["id"])
            client.flushdb()
    assert lengths == (1, 1)
    assert ids == ("mail-1", "note-1")


def test_a_rendered_payload_is_checked_by_kombus_own_decoding(spare_db):
    with current_app.connection_for_write(spare_db) as connection:
        producer = current_app.amqp.Producer(connection)
        template = templates.record(current_app, connection, send_welcome_email, "email", True)
        options = template.fill(redis_push.STAND_IN_ID, {}, "email", 0)
        frozen = redis_push.FrozenPayload.make(producer, template, options, "email")
        assert redis_push.verify(producer, template, frozen, "email", templates.SAMPLES) is None
        # A message layout that moved a field: the job id now stands where its repr should.
        shifted = redis_push.FrozenPayload(frozen.parts, tuple(
            "id" if slot == "kwargsrepr" else slot for slot in frozen.slots),
                                           frozen.tail, frozen.body_encoding, frozen.channel,
                                           frozen.maxlevels)
        problem = redis_push.verify(producer, template, shifted, "email", templates.SAMPLES)
    assert problem and "decodes differently" in problem


def test_without_kombus_private_methods_the_fast_path_falls_back_with_a_warning(monkeypatch,
                                                                                   caplog):
    from kombu.transport.redis import Channel

    owner = next(c for c in Channel.__mro__ if "_inplace_augment_message" in vars(c))
    monkeypatch.delattr(owner, "_inplace_augment_message")
    paths = Fastpaths(frozenset({redis_push.PATH.name}))

    assert not paths.settle(redis_push.PATH)
    assert "_inplace_augment_message is gone" in paths.fallbacks()[redis_push.PATH.name]
    assert "fast path redis-push is off" in caplog.text
