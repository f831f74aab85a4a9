"""Why is this job not running? One plain sentence per cause, for waiting and delayed jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.timesince import timeuntil

from tasks.enqueue import ratelimits
from tasks.models import Job, JobState, JobWindow
from tasks.worker import presence

#: "N jobs of higher priority ahead" is counted exactly up to this many.
AHEAD_CAP = 10_000


@dataclass(frozen=True)
class QueueSituation:
    """What the workers and pause flags say about one queue, read once per page."""

    paused: bool
    consumers: list[str]
    busy: bool  # every live consumer runs as many jobs as its concurrency

    @classmethod
    def of(cls, queue: str, now: datetime | None = None) -> QueueSituation:
        live = [w for w in presence.workers(now) if queue in (w.queues or [])]
        capacity = sum(w.concurrency for w in live)
        running = sum(w.active for w in live)
        return cls(
            paused=queue in presence.paused_queues(),
            consumers=[w.hostname for w in live],
            busy=bool(live) and running >= capacity,
        )


def _ahead(qs) -> str:
    n = qs.order_by().values("pk")[: AHEAD_CAP + 1].count()
    return f"{AHEAD_CAP:,}+" if n > AHEAD_CAP else f"{n:,}"


def _children_reason(job: Job) -> str:
    from tasks.models import JobGroup

    group = JobGroup.objects.filter(parent=job.pk).first()
    if group is None:
        return "Waiting for its children (a flow's parent)."
    return (f"Waiting for its children: {group.remaining} of {len(group.members)} still to "
            "complete (a flow's parent starts when they have).")


def reasons(job: Job, situation: QueueSituation | None = None,
            now: datetime | None = None) -> list[str]:
    """Empty for jobs that are not waiting, delayed or waiting for children."""
    if job.state == JobState.WAITING_CHILDREN:
        return [_children_reason(job)]
    if job.state not in (JobState.WAITING, JobState.DELAYED):
        return []
    now = now or timezone.now()
    situation = situation or QueueSituation.of(job.queue, now)
    found: list[str] = []
    limits = ratelimits.current()
    keys = ratelimits.keys_of(job.queue, job.name, limits)
    held = presence.held_queues(now).get(job.queue)
    if job.state == JobState.DELAYED and held is not None:
        found.append(f"Queue {job.queue} is held until {timezone.localtime(held):%H:%M:%S %Z}: "
                     "a job was told to slow down (rate limited by its provider).")
    elif job.state == JobState.DELAYED and keys and (job.delay_ms <= 1 or job.attempts_made == 0):
        limits_text = ", ".join(f"{q}{'/' + n if n else ''} {limits[(q, n)]}" for q, n in keys)
        until = timezone.localtime(job.run_at) if job.run_at else None
        found.append(f"Rate limited until {until:%Y-%m-%d %H:%M:%S %Z} ({limits_text}): the "
                     "promoter releases it when its window has a slot." if until and job.run_at > now
                     else f"Rate limited ({limits_text}): released when its window has a slot.")
    elif job.state == JobState.DELAYED:
        if job.run_at and job.run_at > now:
            found.append(f"Delayed until {timezone.localtime(job.run_at):%Y-%m-%d %H:%M:%S %Z} "
                         f"(in {timeuntil(job.run_at, now)}).")
        else:
            found.append("Due now: the promoter moves it to waiting on its next tick "
                         "(is the promoter running?).")
        found.extend(_debounced(job, now))
    if situation.paused:
        found.append(f"Queue {job.queue} is paused: no worker takes its jobs until it is resumed.")
    elif not situation.consumers:
        found.append(f"No worker consumes queue {job.queue}: start one with -Q {job.queue}.")
    elif situation.busy:
        found.append(f"All consumers of {job.queue} are busy "
                     f"({', '.join(situation.consumers)}).")
    if job.state == JobState.WAITING:
        waiting = Job.objects.waiting(job.queue)
        higher = waiting.filter(priority__lt=job.priority)
        if higher.exists():
            found.append(f"{_ahead(higher)} job(s) of higher priority ahead.")
        found.extend(_same_priority_ahead(job, waiting))
        if job.published_at is None:
            found.append("Not yet sent to the broker: the promoter's relay will publish it.")
    if not found:
        found.append("Nothing holds it back: a worker should take it within moments.")
    return found


def _same_priority_ahead(job: Job, waiting) -> list[str]:
    """Of its priority, FIFO jobs queued earlier are ahead, and every LIFO job (pushed to the
    front); of a LIFO job, only the LIFO jobs pushed after it."""
    if not job.enqueued_at:
        return []
    same = waiting.filter(priority=job.priority)
    found = []
    if job.lifo:
        later = same.filter(lifo=True, enqueued_at__gt=job.enqueued_at)
        if later.exists():
            found.append(f"{_ahead(later)} LIFO job(s) of the same priority added after it.")
        return found
    earlier = same.filter(lifo=False, enqueued_at__lt=job.enqueued_at)
    if earlier.exists():
        found.append(f"{_ahead(earlier)} job(s) of the same priority queued earlier.")
    front = same.filter(lifo=True)
    if front.exists():
        found.append(f"{_ahead(front)} LIFO job(s) of the same priority ahead.")
    return found


def _debounced(job: Job, now: datetime) -> list[str]:
    window = (JobWindow.objects.filter(job_id=job.pk, kind=JobWindow.Kind.DEBOUNCE,
                                       expires_at__gt=now).first())
    if window is None:
        return []
    key = f"key {window.key!r}" if window.key else "its job name"
    return [f"Debounced ({key}): each add before it starts replaces its data and moves "
            "its start again."]
