"""On Redis, a pipelined chunk (or a single direct push) writes exactly the message ``Producer.publish`` writes."""

import json

import pytest
from celery import current_app

from tasks.processors.email import send_welcome_email
from tasks.wire import MessageBuilder
from tests.broker_plugin import private_server

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


def _queued(client, key: str) -> dict:
    message = json.loads(client.lpop(key))
    message["properties"].pop("delivery_tag")  # a fresh uuid per message
    return message


def test_given_redis_when_a_chunk_is_pipelined_then_its_message_equals_kombus(broker):
    if not broker.startswith("redis"):
        pytest.skip(f"Redis only; broker is {broker.split(':')[0]}")
    if private_server() is None:
        pytest.skip("needs the test session's private Redis: it writes to and flushes a spare "
                    "database, which on another server may be somebody's data")
    spare_db = broker.rsplit("/", 1)[0] + "/15"  # no worker consumes it
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
        with producer.channel.conn_or_acquire() as client:
            key = producer.channel._q_for_pri("email", 1)
            assert client.llen(key) == 3
            first, second, third = (_queued(client, key) for _ in range(3))
            client.flushdb()
    assert first == second == third
    assert first["headers"]["id"] == "wire-1"
