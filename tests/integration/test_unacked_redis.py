"""kombu's unacked records on Redis are written after the pool write, and kombu's paths still hold.

A real kombu Redis channel on a spare database of the private server, a real
``Hub``; the pool is its outbound buffer (a deque the test empties when "the
job is written to a child"), as in ``tests/unit/test_worker_events.py``.
"""

from __future__ import annotations

import json
from collections import deque
from types import SimpleNamespace

import pytest
from kombu import Connection
from kombu.asynchronous import Hub
from kombu.transport.redis import QoS as RedisQoS

from tasks.fastpath import unacked

QUEUE = "unacked-test"


@pytest.fixture
def setup(spare_db):
    """A channel with two messages queued, the consumer parts the deferral needs, a loop."""
    connection = Connection(spare_db, transport_options={"visibility_timeout": 3600})
    channel = connection.default_channel
    client = channel.client
    client.flushdb()
    channel.queue_declare(QUEUE)
    producer = connection.Producer(serializer="json")
    for n in (1, 2):
        producer.publish({"n": n}, routing_key=QUEUE)
    hub = Hub()
    hub.call_repeatedly(0.01, lambda: None)  # short poll timeouts
    outbound: deque = deque()
    consumer = SimpleNamespace(hub=hub, connection=connection,
                               pool=SimpleNamespace(_pool=SimpleNamespace(outbound_buffer=outbound)))
    loop = hub.create_loop()

    def turns(n: int = 1) -> None:
        for _ in range(n):
            next(loop)

    def take():
        """What the worker's consumer does with a message: kombu's ``append``, then the pool."""
        message = channel.basic_get(QUEUE)  # runs qos.append
        outbound.append(message.delivery_tag)
        return message

    def records() -> dict:
        return {tag.decode(): json.loads(value)
                for tag, value in client.hgetall(channel.qos.unacked_key).items()}

    yield SimpleNamespace(consumer=consumer, channel=channel, client=client, take=take,
                          turns=turns, outbound=outbound, records=records)
    client.flushdb()
    hub.close()
    connection.release()


def test_given_kombu_alone_the_record_is_written_before_the_consumer_sees_the_message(setup):
    message = setup.take()

    assert list(setup.records()) == [message.delivery_tag]


def defer_unacked_bookkeeping(consumer) -> bool:
    """Install the fast path on the stand-in consumer (its prefork check is the real worker's)."""
    if unacked.problem(consumer):
        return False
    unacked.install(consumer)
    return True


def test_the_records_are_written_once_the_pool_has_the_jobs_in_one_round_trip(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    first, second = setup.take(), setup.take()
    assert setup.records() == {}, "written before the pool write"

    setup.turns(1)
    assert setup.records() == {}, "the jobs are still in the pool's outbound buffer"

    setup.outbound.clear()  # the pool wrote them to its children
    setup.turns(1)
    records = setup.records()
    assert sorted(records) == sorted([first.delivery_tag, second.delivery_tag])
    assert records[first.delivery_tag] == [first._raw, "", QUEUE]  # kombu's record, as kombu writes it
    index = setup.client.zrange(setup.channel.qos.unacked_index_key, 0, -1)
    assert sorted(tag.decode() for tag in index) == sorted(records)


def test_a_record_waits_one_turn_at_most_for_the_pool(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    message = setup.take()  # e.g. every child busy: the job stays in the buffer

    setup.turns(3)

    assert list(setup.records()) == [message.delivery_tag]


def test_a_message_acknowledged_before_its_record_was_written_leaves_nothing(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    message = setup.take()

    message.ack()
    setup.outbound.clear()
    setup.turns(3)

    assert setup.records() == {}
    assert setup.client.zcard(setup.channel.qos.unacked_index_key) == 0
    assert setup.channel.qos.can_consume()
    setup.channel.qos._flush()
    assert not setup.channel.qos._delivered


def test_a_message_requeued_before_its_record_was_written_goes_back_on_the_queue(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    message = setup.take()

    message.requeue()

    assert setup.records() == {}
    queued = [json.loads(raw)["properties"]["delivery_tag"]
              for raw in setup.client.lrange(QUEUE, 0, -1)]
    assert len(queued) == 2 and message.delivery_tag in queued  # the other one, and this again


def test_a_message_rejected_before_its_record_was_written_is_dropped(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    message = setup.take()

    message.reject()
    setup.turns(3)

    assert setup.records() == {}
    assert setup.client.llen(QUEUE) == 1


def test_at_shutdown_messages_taken_but_not_recorded_are_restored(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    setup.take(), setup.take()
    assert setup.client.llen(QUEUE) == 0

    setup.channel.qos.restore_unacked_once()

    assert setup.client.llen(QUEUE) == 2
    assert setup.records() == {}


def test_installing_twice_defers_once(setup):
    assert defer_unacked_bookkeeping(setup.consumer)
    append = setup.channel.qos.append

    assert defer_unacked_bookkeeping(setup.consumer)
    assert setup.channel.qos.append is append


@pytest.mark.parametrize(
    "change, why",
    [
        ({"hub": None}, "no event loop"),  # solo pool
        ({"pool": SimpleNamespace(_pool=SimpleNamespace())}, "the pool is not prefork"),  # threads
        # AMQP (py-amqp): the channel has no kombu QoS; the broker keeps unacked messages
        ({"connection": SimpleNamespace(default_channel=SimpleNamespace(basic_qos=None))},
         "the broker is not Redis"),
    ],
)
def test_nothing_applies_without_a_loop_a_prefork_pool_or_redis(setup, change, why):
    consumer = SimpleNamespace(**{**vars(setup.consumer), **change})

    assert unacked.applies(consumer) == (False, why)
    assert "append" not in vars(setup.channel.qos)
    assert isinstance(setup.channel.qos, RedisQoS)


def test_a_prefork_pool_without_its_outbound_buffer_is_a_problem_named(setup):
    consumer = SimpleNamespace(**{**vars(setup.consumer), "pool": SimpleNamespace(_pool=None)})

    assert "outbound_buffer" in unacked.problem(consumer)


def test_the_real_kombu_has_what_the_fast_path_relies_on(monkeypatch):
    assert unacked.PATH.mismatch() is None
    monkeypatch.delattr(RedisQoS, "pipe_or_acquire")
    assert "pipe_or_acquire is gone" in unacked.PATH.mismatch()
