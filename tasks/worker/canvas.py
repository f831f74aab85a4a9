"""Celery canvas on job records: what starts when a job ends, in the transaction that ends it.

A job of a canvas keeps on its row the signatures to apply after it
(``tasks.enqueue.options``). When it completes, the next step of its chain
and its ``link`` callbacks are enqueued (as jobs, with its result as their
first argument unless immutable) and, for a chord part, the chord's counter
(``JobGroup.remaining``) is decremented; the part that brings it to zero
enqueues the chord's body with the parts' results in order. All of this runs
inside the transaction that records the completion, so a crash in between
loses nothing and starts nothing twice. When it fails for good (or is
cancelled, or expires), the chain stops, its ``link_error`` callbacks get its
id as their argument, and a chord it belongs to fails: its body is recorded
failed with a ``ChordError`` and the body's own ``link_error`` callbacks run.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from celery.canvas import signature
from django.db import connection
from django.utils import timezone

from tasks.enqueue.publishing import message_for, publish_on_commit, stamps_at_insert
from tasks.jobs.states import JobState
from tasks.models import Job, JobGroup

logger = logging.getLogger("tasks.worker.canvas")


def after_success(job_id: str, canvas: dict | None, group_id: str, result: Any) -> None:
    """Start what follows a completed job (inside the transaction recording the completion)."""
    canvas = canvas or {}
    for callback in canvas.get("link") or ():
        _apply(callback, (result,), job_id)
    chain = list(canvas.get("chain") or ())
    if chain:
        _apply(chain.pop(), (result,), job_id, chain=chain or None)
    if group_id:
        _member_done(group_id, job_id)


def after_failure(job_id: str, canvas: dict | None, group_id: str, reason: str) -> None:
    """A job failed for good, was cancelled or expired: errbacks; its chord or flow parent."""
    for errback in (canvas or {}).get("link_error") or ():
        _apply(errback, (job_id,), job_id)
    if not group_id:
        return
    policy = (canvas or {}).get("flow")
    if policy is None:
        _chord_part_failed(group_id, job_id, reason)
    elif policy == "fail":
        _fail_parent(group_id, job_id, reason)
    else:  # ignore: the parent runs and sees it; remove: the parent does not wait for it
        if policy == "remove":
            Job.objects.filter(pk=job_id).update(parent_id="")
        _member_done(group_id, job_id)


def _apply(sig: dict, args: tuple, parent_id: str, **options: Any) -> None:
    """Enqueue ``sig`` as a job (or jobs): its own args win when it is immutable."""
    signature(sig, app=current_app).apply_async(args, parent_id=parent_id, **options)


def _member_done(group_id: str, job_id: str) -> None:
    """One member fewer to wait for; the last one starts the chord's body or the flow's parent."""
    remaining = _decrement(group_id)
    if remaining != 0:
        return
    group = JobGroup.objects.get(pk=group_id)
    if group.parent:
        _release_parent(group.parent)
        return
    results = list(Job.objects.group_members(group_id).order_by("group_index")
                   .values_list("result", flat=True))
    logger.info("chord %s complete (%d parts): applying its body", group_id, len(results))
    _apply(group.callback, (results,), job_id)


def _release_parent(parent_id: str) -> None:
    """A flow's parent whose children are done: waiting, and published after commit."""
    now = timezone.now()
    stamped = stamps_at_insert()
    if Job.objects.filter(pk=parent_id, state=JobState.WAITING_CHILDREN).update(
            state=JobState.WAITING, enqueued_at=now, published_at=now if stamped else None):
        logger.info("flow parent %s: children done, starting it", parent_id)
        publish_on_commit([message_for(Job.objects.get(pk=parent_id))], claimed=stamped)


def _fail_parent(group_id: str, child_id: str, reason: str) -> None:
    """A child failed and its ``on_failure`` is ``fail``: its parent fails, and so on up."""
    parent_id = JobGroup.objects.filter(pk=group_id).values_list("parent", flat=True).first()
    parent = Job.objects.filter(pk=parent_id, state=JobState.WAITING_CHILDREN).first()
    if parent is None:
        return
    now = timezone.now()
    error = f"ChildFailedError: child {child_id} did not complete: {reason}"
    if Job.objects.filter(pk=parent_id, state=JobState.WAITING_CHILDREN).update(
            state=JobState.FAILED, finished_at=now, errors=[*(parent.errors or []), {
                "attempt": 0, "error": error[:10_000], "traceback": "",
                "exception": "tasks.jobs.errors.ChildFailedError",
                "started_at": None, "failed_at": now.isoformat()}]):
        logger.warning("flow parent %s failed: %s", parent_id, error)
        after_failure(parent_id, parent.canvas, parent.group_id, error)


def _decrement(group_id: str) -> int | None:
    """One chord part fewer to wait for, by one guarded UPDATE; the count left, or None."""
    table = connection.ops.quote_name(JobGroup._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET remaining = remaining - 1 "
            f"WHERE id = %s AND remaining > 0 AND NOT failed RETURNING remaining", [group_id])
        row = cursor.fetchone()
    return row[0] if row else None


def _chord_part_failed(group_id: str, job_id: str, reason: str) -> None:
    """The first failing part fails the chord: its body never runs, recorded failed."""
    if not JobGroup.objects.filter(pk=group_id, failed=False, callback__isnull=False) \
            .update(failed=True):
        return
    body = JobGroup.objects.get(pk=group_id).callback or {}
    body_id = (body.get("options") or {}).get("task_id")
    error = f"ChordError: part {job_id} of chord {group_id} did not complete: {reason}"
    logger.warning("chord %s failed: %s", group_id, error)
    if body_id:
        queue, _, name = str(body.get("task", "")).partition(".")
        now = timezone.now()
        Job.objects.get_or_create(pk=body_id, defaults={
            "queue": queue, "name": name, "data": body.get("kwargs") or {},
            "state": JobState.FAILED, "created_at": now, "finished_at": now,
            "parent_id": job_id, "errors": [{
                "attempt": 0, "error": error, "traceback": "",
                "exception": "celery.exceptions.ChordError",
                "started_at": None, "failed_at": now.isoformat()}],
        })
    for errback in (body.get("options") or {}).get("link_error") or ():
        _apply(errback, (body_id or job_id,), job_id)
