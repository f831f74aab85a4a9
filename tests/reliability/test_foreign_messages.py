"""Hostile and malformed messages pushed straight into our queue: none run, all counted."""

from __future__ import annotations

import json
import pickle
import time

from intelgraph.celery import app as celery_app
from tasks.models import RejectedMessage
from tasks.queues import QueueName, add_job
from tests.integration.helpers import wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution


def _push(body, content_type: str, headers: dict | None, encoding: str = "utf-8") -> None:
    queue = next(q for q in celery_app.conf.task_queues if q.name == "analytics")
    with celery_app.connection_for_write() as conn:
        conn.Producer().publish(body, exchange=queue.exchange, routing_key="analytics",
                                content_type=content_type, content_encoding=encoding,
                                headers=headers or {}, declare=[queue])


def _task_headers(task: str, job_id: str) -> dict:
    return {"lang": "py", "task": task, "id": job_id, "root_id": job_id, "parent_id": None,
            "group": None, "argsrepr": "()", "kwargsrepr": "{}", "origin": "attacker",
            "retries": 0, "eta": None, "expires": None, "timelimit": [None, None]}


def test_foreign_messages_are_rejected_counted_and_never_run(service):
    ours = "analytics.record-analytics"
    hostile = [
        # pickle: would run code on decode if accepted
        (pickle.dumps(((), {"key": "pickled"}, {})), "application/x-python-serialize",
         _task_headers(ours, "pickle-1"), "binary"),
        (b"\x00\xff\xfe not json at all", "application/json", _task_headers(ours, "garbage-1"),
         "utf-8"),
        (json.dumps([[], {"key": "unknown"}, {}]), "application/json",
         _task_headers("evil.remove-everything", "unknown-1"), "utf-8"),
        (json.dumps({"not": "a task body"}), "application/json", _task_headers(ours, "shape-1"),
         "utf-8"),
        (json.dumps({"hello": "world"}), "application/json", None, "utf-8"),
        # well-formed, names our task, but no job was ever recorded for it
        (json.dumps([[], {"key": "forged"}, {"callbacks": None, "errbacks": None, "chain": None,
                                             "chord": None}]),
         "application/json", _task_headers(ours, "forged-1"), "utf-8"),
    ]
    for body, content_type, headers, encoding in hostile:
        _push(body, content_type, headers, encoding)
    job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "legit"})
    wait_state(job_id, "completed")
    wait_for(lambda: RejectedMessage.objects.count() >= len(hostile), 20,
             message="every hostile message to be counted")
    time.sleep(1)
    reasons = sorted(RejectedMessage.objects.values_list("reason", flat=True))
    assert len(reasons) == len(hostile), reasons
    assert "unknown-task" in reasons and "no-job-record" in reasons
    assert reasons.count("undecodable") + reasons.count("invalid") >= 3, reasons
    assert not Execution.objects.exclude(key="legit").exists()
    assert Execution.objects.filter(key="legit").count() == 1
