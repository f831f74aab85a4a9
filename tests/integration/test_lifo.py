"""LIFO jobs: on Redis pushed where kombu's consumer pops next; refused where that cannot be.

kombu's Redis consumer pops each priority list with ``BRPOP``; messages go in
with ``LPUSH`` (first in, first out). A LIFO job's message goes in with
``RPUSH`` from the redis-push fast path (tasks/enqueue/lifo.py).
"""

from __future__ import annotations

import base64
import json

import pytest
from celery import current_app

from tasks.enqueue.sending import StockSender
from tasks.fastpath import redis_clients, redis_push, templates
from tasks.fastpath.registry import Fastpaths
from tasks.fastpath.sender import FastSender
from tasks.jobs.errors import UnsupportedOptionError
from tasks.models import Job
from tasks.queues import JobPriority, QueueName, add_bulk, add_job
from tests import processes
from tests.integration.helpers import shared_worker_paused
from tests.processes import wait_for
from tests.testapp.processors import record

PUSH = (redis_clients.PATH, templates.PATH, redis_push.PATH)


def _redis() -> bool:
    return current_app.conf.broker_url.startswith("redis")


def test_given_a_chunk_with_lifo_jobs_then_they_are_popped_before_the_others(spare_db):
    paths = Fastpaths(frozenset(path.name for path in PUSH))
    for path in PUSH:
        assert paths.settle(path)
    with current_app.connection_for_write(spare_db) as connection:
        producer = current_app.amqp.Producer(connection)
        sender = FastSender(current_app, producer, True, paths, shared={})
        with sender.chunk():
            for name, lifo in (("fifo-0", False), ("lifo-0", True), ("fifo-1", False),
                               ("lifo-1", True), ("fifo-2", False)):
                sender.send(name, record.name, "data-processing", {"key": name}, 3, lifo=lifo)
        key = redis_push.list_key(producer.channel, "data-processing", 2)
        with producer.channel.conn_or_acquire() as client:
            popped = []
            while raw := client.rpop(key):  # BRPOP's end
                message = json.loads(raw)
                assert json.loads(base64.b64decode(message["body"]))[1]["key"] == \
                    message["headers"]["id"]
                popped.append(message["headers"]["id"])
            client.flushdb()
    assert popped == ["lifo-1", "lifo-0", "fifo-0", "fifo-1", "fifo-2"]


def test_a_lifo_job_overtakes_the_backlog_of_its_priority_on_a_real_worker(
        service, live_broker, tmp_path, own_fastpaths):
    if not _redis():  # RabbitMQ: the option is refused at the call instead (next test)
        with pytest.raises(UnsupportedOptionError, match="'lifo'.*not Redis"):
            add_job(QueueName.DATA_PROCESSING, "record", {"key": "lifo"}, lifo=True)
        return
    with shared_worker_paused("data-processing"):
        backlog = add_bulk({"queue": "data-processing", "name": "record",
                            "data": {"key": f"fifo{n}", "sleep": 0.05}} for n in range(15))
        higher = add_job(QueueName.DATA_PROCESSING, "record", {"key": "high"},
                         priority=JobPriority.HIGH)
        last_in = add_job(QueueName.DATA_PROCESSING, "record", {"key": "lifo"}, lifo=True)
        worker = processes.worker(live_broker, tmp_path, "lifo", queues="data-processing",
                                  concurrency=1).start()
        try:
            wait_for(lambda: Job.objects.filter(state="completed").count() == 17, 60,
                     message="every job to complete")
        finally:
            worker.stop()
    order = list(Job.objects.order_by("started_at").values_list("pk", flat=True))
    keys = dict(Job.objects.values_list("pk", "data__key"))
    assert order[:2] == [higher, last_in], [keys[k] for k in order]
    # The rest: the backlog. (Not asserted in order: the shared worker's pending BRPOP
    # can take the first message pushed after its consumer was cancelled, and kombu
    # puts that one back at the other end.)
    assert sorted(order[2:]) == sorted(backlog), " ".join(keys[k] for k in order)


def test_lifo_is_refused_at_the_call_where_it_cannot_be_honoured(db, monkeypatch):
    monkeypatch.setitem(current_app.__dict__, "intelgraph_fastpaths", Fastpaths(frozenset()))
    with pytest.raises(UnsupportedOptionError) as refused:
        add_job(QueueName.DATA_PROCESSING, "record", {"key": "x"}, lifo=True)
    with pytest.raises(UnsupportedOptionError):
        add_bulk([{"queue": "data-processing", "name": "record", "data": {"key": "y"}},
                  {"queue": "data-processing", "name": "record", "data": {"key": "z"},
                   "lifo": True}])
    assert not Job.objects.exists()
    reason = str(refused.value)
    if _redis():
        assert "fast path message-templates is off (by configuration)" in reason, reason
    else:
        assert "not Redis" in reason, reason
    assert "adds every message at the back" in reason or "put in front" in reason


def test_a_lifo_job_republished_by_the_stock_path_is_said_to_go_to_the_back(db, caplog):
    with current_app.connection_for_write() as connection:
        recorder = templates.Recorder(connection)
        StockSender(current_app, recorder, batched=False).send(
            "late-lifo", record.name, "data-processing", {"key": "k"}, 3, lifo=True)
    assert recorder.published is not None  # sent all the same, not dropped
    assert "job late-lifo asked for LIFO but goes to the back of its priority" in caplog.text
