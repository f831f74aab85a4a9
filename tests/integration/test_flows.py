"""Flows on real workers: a parent waits for its children, once, whatever fails or is killed."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tasks.jobs.errors import InvalidFlowError
from tasks.models import Job
from tasks.queues import add_flow
from tests import processes
from tests.integration.helpers import shared_worker_paused, wait_state
from tests.testapp.models import Execution

FAST = {"attempts": 1}


def adds(*pairs, on_failure="fail") -> list[dict]:
    return [{"queue": "data-processing", "name": "add", "data": {"x": x, "y": y},
             "on_failure": on_failure} for x, y in pairs]


def test_a_parent_runs_after_its_children_with_their_results(service):
    flow = add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": "parent"},
                     "children": adds((1, 1), (2, 2), (3, 3))})

    assert Job.objects.get(pk=flow.id).state == "waiting-children"
    parent = wait_state(flow.id, "completed", timeout=40)
    assert parent.result == {"sum": 12, "children": 3, "failures": []}
    children = Job.objects.filter(parent_id=flow.id)
    assert {child.state for child in children} == {"completed"}
    assert all(child.finished_at <= parent.started_at for child in children)
    assert [kid.id for kid in flow.children] == [c.id for c in children.order_by("group_index")]


def test_nested_flows_start_level_by_level(service):
    flow = add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": "top"},
                     "children": [
                         {"queue": "analytics", "name": "sum-children", "data": {"key": "mid"},
                          "children": adds((5, 5))},
                         *adds((1, 0)),
                     ]})

    top = wait_state(flow.id, "completed", timeout=40)
    mid = Job.objects.get(pk=flow.children[0].id)
    assert mid.result["sum"] == 10 and top.result == {"sum": 1, "children": 2, "failures": []}


@pytest.mark.parametrize("policy, parent_state, failures", [
    ("fail", "failed", None), ("ignore", "completed", 1), ("remove", "completed", 0)])
def test_each_failure_policy(service, policy, parent_state, failures):
    flow = add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": policy},
                     "children": [*adds((1, 1)),
                                  {"queue": "data-processing", "name": "always-fails",
                                   "data": {"key": f"child-{policy}"}, "options": FAST,
                                   "on_failure": policy}]})

    parent = wait_state(flow.id, parent_state, timeout=40)
    if policy == "fail":
        assert "ChildFailedError" in parent.errors[-1]["error"]
        assert not Execution.objects.filter(key=policy).exists()  # the parent never ran
    else:
        assert parent.result["sum"] == 2 and len(parent.result["failures"]) == failures


def test_a_bad_node_writes_nothing(db):
    with pytest.raises(InvalidFlowError, match="on_failure 'explode'"):
        add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": "x"},
                  "children": adds((1, 1), on_failure="explode")})
    with pytest.raises(InvalidFlowError, match="give it no delay"):
        add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": "x"},
                  "options": {"delay": 1000}, "children": adds((1, 1))})
    assert not Job.objects.exists()


def test_the_parent_starts_exactly_once_while_workers_and_promoters_are_killed(
        service, live_broker, tmp_path):
    """20 slow children on a worker killed again and again, two promoters: one parent run."""
    with shared_worker_paused("data-processing"), shared_worker_paused("analytics"):
        # Up to 4 kills may hit the same child each time: above the poison-job limit (3), which
        # would fail it (and so the flow) instead of testing that the parent starts once.
        lost_limit = {"JOB_MAX_WORKER_LOST": "10"}
        extra_promoter = processes.promoter(live_broker, tmp_path, "promoter2",
                                            **lost_limit).start()
        worker = processes.worker(live_broker, tmp_path, "victim",
                                  queues="data-processing,analytics", **lost_limit).start()
        children = [{"queue": "data-processing", "name": "record",
                     "data": {"key": f"kid{n}", "sleep": 0.3}} for n in range(20)]
        flow = add_flow({"queue": "analytics", "name": "sum-children",
                         "data": {"key": "once"}, "children": children})
        kills = 0
        try:
            deadline = time.monotonic() + 90
            while Job.objects.get(pk=flow.id).state != "completed" and time.monotonic() < deadline:
                time.sleep(1.5)
                if kills < 4 and Job.objects.filter(parent_id=flow.id, state="active").exists():
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.process.wait(10)
                    kills += 1
                    worker.start()
                if kills == 2:
                    extra_promoter.signal(signal.SIGKILL)
            wait_state(flow.id, "completed", timeout=60)
        finally:
            worker.stop()
            extra_promoter.stop()
    assert kills >= 2
    assert Execution.objects.filter(key="once").count() == 1
    done = Job.objects.filter(parent_id=flow.id, state="completed").count()
    assert done == 20 and Job.objects.get(pk=flow.id).result["children"] == 20


def test_a_waiting_parent_says_why_on_its_page(db, client):
    from django.urls import reverse

    from tasks.jobs import permissions
    from tests.integration.helpers import staff_user

    flow = add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": "page"},
                     "children": adds((1, 1), (2, 2))})
    client.force_login(staff_user("viewer", permissions.VIEW))

    html = client.get(reverse("dashboard:job", args=[flow.id])).content.decode()

    assert "Waiting for its children: 2 of 2 still to complete" in html
    assert all(reverse("dashboard:job", args=[kid.id]) in html for kid in flow.children)


def test_a_child_failed_by_losing_its_worker_too_often_fails_its_parent(db):
    """The poison-job limit fails a child for good: its flow parent hears of it (found by a
    RabbitMQ run where the parent was left waiting for its children for ever)."""
    from django.conf import settings
    from django.utils import timezone

    from tasks.worker.lost import give_back

    flow = add_flow({"queue": "analytics", "name": "sum-children", "data": {"key": "lost"},
                     "children": adds((1, 1))})
    child = Job.objects.get(parent_id=flow.id)
    Job.objects.filter(pk=child.pk).update(state="active", attempts_made=1, worker="gone@x",
                                           lost_count=settings.JOB_MAX_WORKER_LOST - 1)

    assert give_back([child.pk], "test: its worker died", timezone.now()) == 0

    assert Job.objects.get(pk=child.pk).state == "failed"
    parent = Job.objects.get(pk=flow.id)
    assert parent.state == "failed"
    assert child.pk in parent.errors[-1]["error"]
