"""Helpers for integration tests against the real worker and broker."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.models import Permission, User

from intelgraph.celery import app as celery_app
from tasks.models import Job
from tests.processes import ServiceProcess, wait_for


def wait_state(job_id: str, state: str, timeout: float = 30.0) -> Job:
    def reached():
        job = Job.objects.filter(pk=job_id).first()
        return job if job and job.state == state else None

    try:
        return wait_for(reached, timeout, message=f"job {job_id} to be {state}")
    except AssertionError:
        job = Job.objects.filter(pk=job_id).first()
        raise AssertionError(
            f"job {job_id} is {job and job.state}, not {state}; errors: {job and job.errors}"
        ) from None


def staff_user(username: str = "ops", *permissions: str) -> User:
    """A staff user holding ``permissions`` ("tasks.view_job" …), and nothing else."""
    user = User.objects.create_user(username, f"{username}@example.com", "pw-12345678",
                                    is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label,
                                                         codename=codename))
    return User.objects.get(pk=user.pk)  # a fresh object: no cached permissions


def queue_length(queue: str) -> int:
    """Messages waiting in ``queue`` on the broker (all priority levels)."""
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        try:
            return channel.queue_declare(queue=queue, passive=True).message_count
        except Exception:
            return 0


@contextmanager
def shared_worker_paused(queue: str):
    """Stop the shared worker consuming ``queue`` so a dedicated worker owns it."""
    node = f"shared@{socket.gethostname()}"
    replies = celery_app.control.cancel_consumer(queue, destination=[node], reply=True, timeout=5)
    assert replies, f"{node} did not answer cancel_consumer"
    try:
        yield
    finally:
        celery_app.control.add_consumer(queue, destination=[node], reply=True, timeout=5)


@contextmanager
def worker_stopped(worker: ServiceProcess) -> Iterator[None]:
    """Stop the shared worker (its heartbeat goes with it), then start it again."""
    worker.stop()
    try:
        yield
    finally:
        seen = len(worker.log_text())
        worker.start()
        wait_for(lambda: "ready." in worker.log_text()[seen:], 60, message="worker restart")
