"""Fixtures: a private broker, the test database shared with real worker processes.

Nothing here touches a Redis on 6379: the broker is a throwaway server on a
free port (``redis-server`` on PATH, else the bundled ``valkey-server``), or
the broker named by ``TEST_BROKER_URL`` for the RabbitMQ matrix run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelgraph.celery import app as celery_app
from tests import processes
from tests.processes import supervise

QUEUE_NAMES = ["email", "notifications", "data-processing", "analytics"]


@pytest.fixture(scope="session")
def service_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="session")
def live_broker() -> str:
    """The private broker started by ``tests.broker_plugin`` (or ``TEST_BROKER_URL``)."""
    url = os.environ["TEST_BROKER_URL"]
    assert celery_app.conf.broker_url == url
    if url.startswith("amqp"):
        # A test broker may hold our queues from older runs, declared with other
        # arguments (RabbitMQ then refuses x-max-priority): start them afresh.
        with celery_app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in celery_app.conf.task_queues:
                channel.queue_delete(queue.name)
                queue(channel).declare()
    return url


@pytest.fixture
def broker(live_broker: str) -> str:
    """Per test: our queues emptied on the private broker."""
    with celery_app.connection_for_write() as conn:
        for name in QUEUE_NAMES:
            try:
                conn.default_channel.queue_purge(name)
            except Exception:  # queue not declared yet
                pass
    return live_broker


@pytest.fixture
def spare_db(broker: str) -> str:
    """A database of the session's private Redis that no worker consumes (flushed by the test)."""
    from tests.broker_plugin import private_server

    if not broker.startswith("redis"):
        pytest.skip(f"Redis only; broker is {broker.split(':')[0]}")
    if private_server() is None:
        pytest.skip("needs the test session's private Redis: it writes to and flushes a spare "
                    "database, which on another server may be somebody's data")
    return broker.rsplit("/", 1)[0] + "/15"


@pytest.fixture(scope="session")
def shared_worker(django_db_setup, django_db_blocker, live_broker, service_tmp) -> Iterator[processes.ServiceProcess]:
    """One worker for all four queues, shared by the integration tests."""
    with django_db_blocker.unblock():
        proc = processes.worker(live_broker, service_tmp, "shared", concurrency=2).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def shared_promoter(django_db_setup, django_db_blocker, live_broker, service_tmp) -> Iterator[processes.ServiceProcess]:
    with django_db_blocker.unblock():
        proc = processes.promoter(live_broker, service_tmp).start()
    yield proc
    proc.stop()


@pytest.fixture
def service(broker, shared_worker, shared_promoter, transactional_db):
    """A running service: worker + promoter on a clean broker and database."""
    supervise(shared_worker, shared_promoter)
    return {"worker": shared_worker, "promoter": shared_promoter}


def pytest_addoption(parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the long soak (20,000 jobs under chaos); .ci/run passes it")
    parser.addoption("--soak-size", type=int, default=None,
                     help="jobs in the soak (make soak: 100,000); implies --soak")
    parser.addoption("--soak-seed", type=int, default=None,
                     help="replay a soak: the seed its summary line printed")


@pytest.fixture
def soak_size(request) -> int:
    """--soak-size N; 20,000 jobs with --soak (CI); a 400-job version in the default run."""
    size = request.config.getoption("--soak-size")
    if size is not None:
        return size
    return 20_000 if request.config.getoption("--soak") else 400


@pytest.fixture
def soak_seed(request) -> int:
    """--soak-seed to replay a run; otherwise a fresh seed, printed in the summary line."""
    import random

    seed = request.config.getoption("--soak-seed")
    return seed if seed is not None else random.SystemRandom().randrange(1, 10**9)


@pytest.fixture(autouse=True)
def _live_stream_stopped() -> Iterator[None]:
    """A test that opened the dashboard's event stream does not leave its threads running."""
    yield
    from django.apps import apps

    config = apps.get_app_config("tasks")
    if config.live_stream is not None:
        config.live_stream.stop()
        config.live_stream = None


@pytest.fixture
def own_fastpaths(monkeypatch):
    """This process's fast paths, all wanted, whatever JOB_FASTPATH says for the run."""
    from tasks import fastpath
    from tasks.fastpath.registry import Fastpaths

    paths = Fastpaths(frozenset(fastpath.NAMES))
    monkeypatch.setitem(celery_app.__dict__, "intelgraph_fastpaths", paths)
    return paths
