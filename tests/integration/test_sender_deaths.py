"""A process killed between committing a job's row and sending its message loses no job.

The promoter, the relay and a lost run's give-back each commit a job as
waiting, then publish after commit. A process that dies in between (the
soak's promoter kills found this on RabbitMQ: a retried job left waiting
with no message) must leave the job to a recovery that works on the broker
in use: on Redis the reconciler, which finds the job on no list; elsewhere
the relay, as the row is stamped published only after the publisher confirm.
The running service (shared worker and promoter) must then run it once.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.enqueue.publishing import stamps_at_insert
from tasks.models import Job, JobState
from tasks.queues import add_job
from tasks.upkeep import promoter
from tasks.worker import lost
from tests.processes import wait_for


class Killed(BaseException):
    """The process's death at its publish: nothing after it runs, no handler catches it."""


def _die_at_publish(*_args, **_kwargs):
    raise Killed


def _parked_job() -> str:
    """A job whose message is not on the broker: delayed a minute (the promoter leaves it)."""
    return add_job("notifications", "send-reminder", {"message": "sender death"}, delay=60_000)


def _killed_at_publish(monkeypatch, module, send) -> None:
    """Run ``send`` with ``module``'s publish killing the process."""
    monkeypatch.setattr(module, "publish", _die_at_publish)
    with pytest.raises(Killed):
        send()


def _killed_promoter(monkeypatch) -> str:
    job_id = _parked_job()
    _killed_at_publish(monkeypatch, promoter,
                       lambda: promoter.promote_due(now=timezone.now() + timedelta(minutes=2)))
    return job_id


def _killed_relay(monkeypatch) -> str:
    job_id = _parked_job()
    # Unpublished, but for the service's own relay not yet past its grace: only this one takes it.
    Job.objects.filter(pk=job_id).update(state=JobState.WAITING, published_at=None,
                                         enqueued_at=timezone.now() + timedelta(minutes=1))
    _killed_at_publish(monkeypatch, promoter, lambda: promoter.relay_unpublished(
        now=timezone.now() + timedelta(minutes=5)))
    return job_id


def _killed_give_back(monkeypatch) -> str:
    job_id = _parked_job()
    Job.objects.filter(pk=job_id).update(state=JobState.ACTIVE, attempts_made=1,
                                         worker="gone@nowhere", started_at=timezone.now())
    _killed_at_publish(monkeypatch, lost, lambda: lost.give_back(
        [job_id], "test: its worker died", timezone.now()))
    return job_id


@pytest.mark.parametrize("sender", [_killed_promoter, _killed_relay, _killed_give_back],
                         ids=["promoter", "relay", "give-back"])
def test_a_sender_killed_after_its_commit_loses_no_job(service, monkeypatch, sender):
    job_id = sender(monkeypatch)
    row = Job.objects.get(pk=job_id)
    assert row.state == JobState.WAITING
    # Redis: stamped, for the reconciler; elsewhere unstamped, for the relay.
    assert (row.published_at is not None) == stamps_at_insert()
    monkeypatch.undo()
    wait_for(lambda: Job.objects.filter(pk=job_id, state=JobState.COMPLETED).exists(), 40,
             message="the job recovered by the service's promoter and run")
    assert Job.objects.get(pk=job_id).attempts_made == 1
