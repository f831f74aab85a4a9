"""A claim the database fails gives its message back to the broker instead of acknowledging it.

On RabbitMQ a waiting job whose message was acknowledged without a claim would wait
for ever (the reconciler can scan Redis queues, not RabbitMQ's): found by the
100,000-job soak on RabbitMQ + PostgreSQL with database sessions terminated.
"""

from __future__ import annotations

import pytest
from celery.exceptions import Reject
from django.db import InterfaceError, OperationalError

from tasks.worker import batch, lifecycle, rejections
from tasks.worker.rejections import requeued_unless_claimed


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(rejections, "REQUEUE_PAUSE_S", 0.0)


@pytest.mark.parametrize("error", [OperationalError("server closed the connection"),
                                   InterfaceError("connection already closed")])
def test_a_database_error_becomes_a_requeue(error):
    with pytest.raises(Reject) as raised, requeued_unless_claimed("job x"):
        raise error
    assert raised.value.requeue is True and raised.value.reason is error


def test_other_errors_and_success_pass_through():
    with requeued_unless_claimed("job x"):
        pass
    with pytest.raises(KeyError), requeued_unless_claimed("job x"):
        raise KeyError("not the database")


def test_a_batch_whose_claim_fails_is_requeued_not_acknowledged(monkeypatch):
    def failing_claim(ids, worker, now=None):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(lifecycle, "claim_many", failing_claim)
    task = type("T", (batch.BatchTask,), {"name": "analytics.t#batch", "job_task_name":
                                          "analytics.t", "batch_size": 10})()
    with pytest.raises(Reject) as raised:
        task.run_batch(object(), ["01a2483a-adec-7983-9822-45e82ac9f0fd"], "w@h")
    assert raised.value.requeue is True


def test_a_single_job_whose_claim_fails_is_requeued_not_acknowledged(monkeypatch):
    from intelgraph.celery import app
    from tests.testapp import processors  # noqa: F401  (registers the test processors)

    def failing_claim(job_id, worker, now=None):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(lifecycle, "claim", failing_claim)
    task = app.tasks["analytics.batched"]
    with pytest.raises(Reject) as raised:
        task._execute("01a2483a-adec-7983-9822-45e82ac9f0fd", "w@h", {"key": "k"})
    assert raised.value.requeue is True
