"""Workers reuse one redis-py client per kombu channel (tasks/fastpath/broker_clients.py)."""

from __future__ import annotations

import pytest
from kombu import Connection

from tasks.fastpath.broker_clients import reuse_redis_clients


@pytest.fixture
def patched_kombu(monkeypatch):
    """The patch for this test only: the test process itself keeps kombu's behaviour."""
    from kombu.transport.redis import Channel

    monkeypatch.setattr(Channel, "_create_client", Channel._create_client)
    assert reuse_redis_clients()


def test_a_channel_builds_one_client_and_a_new_one_for_a_new_pool(live_broker, patched_kombu):
    if not live_broker.startswith("redis"):
        pytest.skip("the patch only concerns kombu's Redis transport")
    with Connection(live_broker) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            first.set("broker-clients-test", "1")
            assert second.get("broker-clients-test") == b"1"

        channel._after_fork()  # kombu drops its pools, as in a forked child
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.delete("broker-clients-test") == 1


def test_installing_twice_keeps_one_wrapper(patched_kombu):
    from kombu.transport.redis import Channel

    wrapper = Channel._create_client
    assert reuse_redis_clients()
    assert Channel._create_client is wrapper
