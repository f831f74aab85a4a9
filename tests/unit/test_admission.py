"""Which tasks a worker runs (tasks/worker/admission.py), without a worker.

The real-worker proof is tests/reliability/test_forged_job_messages.py.
"""

from __future__ import annotations

import pytest

from intelgraph.celery import app
from tasks.jobs.errors import DirectCallRefused
from tasks.models import RejectedMessage
from tasks.processors.notifications import send_reminder
from tasks.worker import admission


def test_the_only_registered_tasks_that_are_not_jobs_are_celerys_own():
    """The service uses no canvas, and beat schedules no ``celery.backend_cleanup``
    (``result_expires`` off): every non-job task is a built-in, so refusing them all
    takes nothing the service needs. A new non-job task fails here."""
    app.loader.import_default_modules()
    others = sorted(name for name, task in app.tasks.items() if not admission.is_job_task(task))
    assert others and all(name.startswith("celery.") for name in others), others
    assert {"celery.starmap", "celery.map", "celery.chunks"} <= set(others)
    assert app.conf.result_expires is None


def test_outside_a_worker_a_job_task_runs_as_a_function(db):
    """Unit tests call processors directly: allowed, nothing recorded."""
    assert not admission.in_worker()
    assert send_reminder("hello")["notification_id"]


def test_inside_a_worker_a_direct_call_is_refused_and_counted(db, monkeypatch):
    monkeypatch.setattr(admission, "_in_worker", True)
    with pytest.raises(DirectCallRefused, match="'notifications.send-reminder' was called "
                                                 "directly inside a worker"):
        send_reminder("hello")
    assert list(RejectedMessage.objects.values_list("reason", "detail")) == [
        ("called-directly", "task notifications.send-reminder")]


def test_the_worker_flag_is_set_by_celerys_worker_signals(monkeypatch):
    from celery import signals

    monkeypatch.setattr(admission, "_in_worker", False)
    signals.worker_process_init.send(sender=None)
    assert admission.in_worker()
