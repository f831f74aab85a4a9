"""Celery canvas on job records, on a real worker: chain, group, chord, link, link_error, expires."""

from __future__ import annotations

import time

import pytest
from celery import chain, chord, group
from celery.result import GroupResult

from intelgraph.celery import app as celery_app
from tasks.jobs.errors import UnsupportedOptionError
from tasks.models import Job, JobGroup
from tests.integration.helpers import shared_worker_paused, wait_state
from tests.processes import wait_for
from tests.testapp.models import Execution
from tests.testapp.processors import add, always_fails, errback, total

FAST = {"type": "fixed", "delay": 100}


def test_a_chain_passes_each_result_on_and_records_each_step(service):
    result = chain(add.s(1, 2), add.s(10), add.s(100))()

    assert result.get(timeout=30) == 113
    last = Job.objects.get(pk=result.id)
    middle = Job.objects.get(pk=last.parent_id)
    first = Job.objects.get(pk=middle.parent_id)
    assert (first.data, middle.data, last.data) == ({"x": 1, "y": 2}, {"x": 3, "y": 10},
                                                    {"x": 13, "y": 100})
    assert {job.state for job in (first, middle, last)} == {"completed"}
    assert [child.id for child in result.parent.children] == [result.id]


def test_a_failing_step_stops_the_chain_and_calls_link_error(service):
    workflow = chain(add.s(1, 2), always_fails.si(key="chain-stop"), add.s(5))
    result = workflow.apply_async(link_error=errback.s())

    with pytest.raises(ConnectionError):
        result.get(timeout=40)
    failed = Job.objects.get(name="always-fails")
    wait_for(lambda: Execution.objects.filter(key=f"errback:{failed.id}").exists(), 20,
             message="the errback with the failed job's id")
    assert not Job.objects.filter(pk=result.id).exists()  # the step after never started
    assert Job.objects.get(name="errback").parent_id == failed.id


def test_a_group_runs_each_member_and_its_result_can_be_saved_and_restored(service):
    result = group(add.s(i, i) for i in range(5))()

    assert result.get(timeout=30) == [0, 2, 4, 6, 8]
    result.save()
    restored = GroupResult.restore(result.id, app=celery_app)
    assert [member.id for member in restored.results] == [r.id for r in result.results]
    assert restored.get(timeout=5) == [0, 2, 4, 6, 8]
    assert list(Job.objects.filter(group_id=result.id).order_by("group_index")
                .values_list("group_index", flat=True)) == [0, 1, 2, 3, 4]


def test_a_chord_runs_its_body_once_after_every_part(service):
    result = chord(add.s(i, i) for i in range(8))(total.s())

    assert result.get(timeout=40) == 56
    time.sleep(1)
    assert Job.objects.filter(name="total").count() == 1
    assert Execution.objects.filter(key__startswith="total:").count() == 1
    body = Job.objects.get(name="total")
    assert body.data == {"values": [0, 2, 4, 6, 8, 10, 12, 14]}
    assert JobGroup.objects.filter(remaining=0, failed=False).count() == 1


def test_a_chord_with_a_failing_part_fails_its_body_with_a_chord_error(service):
    result = chord([add.s(1, 1), always_fails.si(key="chord-part")], total.s())

    async_result = result.apply_async()
    with pytest.raises(Exception) as raised:
        async_result.get(timeout=40)
    assert "ChordError" in type(raised.value).__name__ + str(raised.value)
    body = wait_state(async_result.id, "failed")
    assert "did not complete" in body.errors[-1]["error"]
    assert not Execution.objects.filter(key__startswith="total:").exists()


def test_link_applies_a_callback_with_the_result(service):
    result = add.apply_async((1, 1), link=add.s(5))

    assert result.get(timeout=30) == 2
    child = wait_for(lambda: Job.objects.filter(parent_id=result.id).first(), 20,
                     message="the linked job")
    assert wait_state(child.id, "completed").result == 7


def test_an_expired_job_is_cancelled_not_run(service):
    with shared_worker_paused("data-processing"):
        result = add.apply_async((2, 2), expires=0.5)
        time.sleep(1.0)
    job = wait_state(result.id, "cancelled")
    assert job.logs.filter(message__startswith="not run: expired at").exists()
    assert not Execution.objects.filter(key="add:2+2").exists()
    assert result.state == "REVOKED"


@pytest.mark.parametrize("options, named", [
    ({"shadow": "other-name"}, "shadow"),
    ({"compression": "zlib"}, "compression"),
    ({"queue": "email"}, "queue"),
    ({"headers": {"tenant": "a"}}, "headers"),
    ({"retry": False}, "retry"),
    ({"link": "data-processing.add"}, "link"),  # a name, not a signature
    ({"expires": -1}, "expires"),
    ({"something_new": 1}, "something_new"),
])
def test_an_option_the_service_cannot_honour_is_refused_by_name(db, options, named):
    with pytest.raises(UnsupportedOptionError, match=f"option '{named}' is not supported"):
        add.apply_async((1, 1), **options)
    assert not Job.objects.exists()


def test_a_canvas_step_that_is_not_a_job_is_refused(db):
    with pytest.raises(UnsupportedOptionError, match="is not a declared job"):
        add.apply_async((1, 1), link=celery_app.signature("celery.backend_cleanup"))
    assert not Job.objects.exists()


def test_a_jobs_page_shows_its_parent_and_children(service, client):
    from django.urls import reverse

    from tasks.jobs import permissions
    from tests.integration.helpers import staff_user

    result = chain(add.s(1, 2), add.s(3))()
    assert result.get(timeout=30) == 6
    first = Job.objects.get(pk=result.parent.id)
    client.force_login(staff_user("viewer", permissions.VIEW))

    page = client.get(reverse("dashboard:job", args=[first.pk])).content.decode()
    child = client.get(reverse("dashboard:job", args=[result.id])).content.decode()

    assert "Workflow" in page and reverse("dashboard:job", args=[result.id]) in page
    assert "children" in page and "parent" not in page.split("Workflow")[1].split("</dl>")[0]
    assert reverse("dashboard:job", args=[first.pk]) in child.split("Workflow")[1]
