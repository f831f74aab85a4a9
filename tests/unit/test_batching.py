"""Batched execution's pure parts: grouping messages, declaring processors, reading batches."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from tasks.enqueue.publishing import Message, batches
from tasks.jobs.config import QueueName
from tasks.jobs.routing import batch_task_name
from tasks.upkeep.reconciler import _batch_ids
from tasks.worker.registry import processor
from tasks.worker.remote import holds

BATCH_TASK = batch_task_name("analytics.batched")


def test_batches_keep_priority_between_messages():
    """Jobs of different priorities are never put in one batch; each keeps its place."""
    def message(n: int, priority: int, **extra) -> Message:
        return Message(f"j{n}", "analytics.batched", "analytics", {"key": str(n)}, priority,
                       **extra)

    plain = Message("p1", "analytics.record-analytics", "analytics", {"key": "p"}, 3)
    out = batches([message(1, 3), message(2, 1), plain, message(3, 3),
                   message(4, 3, limits=(5.0, None)), message(5, 1)])
    assert [(m.task_name, m.priority, m.ids) for m in out] == [
        (BATCH_TASK, 3, ("j1", "j3")),
        (BATCH_TASK, 1, ("j2", "j5")),
        ("analytics.record-analytics", 3, ("p1",)),
        ("analytics.batched", 3, ("j4",)),  # its own time limits: on its own
    ]
    assert out[0].data == {"ids": ["j1", "j3"]} and out[0].job_id.startswith("batch-")
    full = batches([message(n, 2) for n in range(23)])
    assert [len(m.ids) for m in full] == [10, 10, 3]


def test_a_job_that_lost_a_run_travels_alone():
    lost = Message("j9", "analytics.batched", "analytics", {"key": "9"}, 3, alone=True)
    fresh = Message("j8", "analytics.batched", "analytics", {"key": "8"}, 3)
    assert [m.ids for m in batches([lost, fresh])] == [("j9",), ("j8",)]
    assert batches([lost])[0].task_name == "analytics.batched"


@pytest.mark.parametrize("batch, error", [
    (1, "from 2 to 1000"), (1001, "from 2 to 1000"), (True, "must be an int"),
    ("10", "must be an int"),
])
def test_a_batch_size_out_of_range_is_refused_at_declaration(batch, error):
    with pytest.raises(TypeError, match=error):
        processor(QueueName.ANALYTICS, "never-declared", batch=batch)


def test_celery_rate_limit_is_refused_on_a_batched_processor():
    with pytest.raises(TypeError, match="rate_limit counts messages"):
        processor(QueueName.ANALYTICS, "never-declared", batch=10, rate_limit="10/s")


def test_a_job_name_may_not_hold_the_batch_mark():
    with pytest.raises(TypeError, match="may not contain"):
        processor(QueueName.ANALYTICS, "odd#name")


def test_the_reconciler_reads_the_ids_a_batch_message_carries():
    body = base64.b64encode(json.dumps([[], {"ids": ["a", "b"]}, {}]).encode()).decode()
    message = {"body": body, "headers": {"id": "batch-1", "task": BATCH_TASK},
               "properties": {"body_encoding": "base64"}}
    assert _batch_ids(message) == ["a", "b"]


def test_terminate_job_finds_the_batch_carrying_a_job():
    batch = SimpleNamespace(id="batch-1", name=BATCH_TASK, kwargs={"ids": ["a", "b"]})
    single = SimpleNamespace(id="c", name="analytics.batched", kwargs={})
    assert holds(batch, "b") and not holds(batch, "c")
    assert holds(single, "c") and not holds(single, "a")
