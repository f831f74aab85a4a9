"""Fast path ``redis-clients``: one redis-py client per kombu channel (tasks/fastpath/redis_clients.py)."""

from __future__ import annotations

import pytest
from kombu import Connection

from tasks.fastpath import redis_clients
from tasks.fastpath.registry import Fastpaths


@pytest.fixture
def patched_kombu(monkeypatch):
    """The patch for this test only: the test process itself keeps kombu's behaviour."""
    from kombu.transport.redis import Channel

    create = Channel._create_client
    monkeypatch.setattr(Channel, "_create_client", getattr(create, "__wrapped__", create))
    redis_clients.patch()


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
    redis_clients.patch()
    assert Channel._create_client is wrapper


def test_without_the_private_constructor_the_fast_path_falls_back_with_a_warning(monkeypatch,
                                                                                    caplog):
    from kombu.transport.redis import Channel

    assert redis_clients.PATH.mismatch() is None
    monkeypatch.delattr(Channel, "_create_client")
    paths = Fastpaths(frozenset({redis_clients.PATH.name}))

    assert not paths.settle(redis_clients.PATH)
    assert paths.fallbacks() == {"redis-clients": "Channel._create_client is gone"}
    assert "fast path redis-clients is off" in caplog.text
