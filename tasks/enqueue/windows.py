"""Unique and debounce windows on record (``tasks.jobs.windows``): one statement decides.

Each add that asks for a window runs one ``INSERT … ON CONFLICT (digest) DO
UPDATE … RETURNING job_id`` on ``JobWindow`` (SQLite ≥ 3.35 and PostgreSQL
alike), in the transaction that writes the job:

- ``unique_for``: the update applies only when the window has expired
  (``WHERE expires_at <= now``), so the row comes back only to the add that
  opened a new window; every other add reads the holder's id and adds nothing;
- ``debounce``: the update always moves the expiry (the pending job's new
  start) and changes the holder only when the window had expired; the
  returned id says whether this add opened the window or must replace the
  pending job's data (``replace_pending``).

Concurrent adds of one key queue up on that row: PostgreSQL locks the
conflicting row until the deciding transaction ends, SQLite's ``IMMEDIATE``
transactions take the write lock first. The job and its window commit or
roll back together.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache

from django.db import connection, transaction

from tasks.enqueue.cursors import bound_cursor
from tasks.jobs.spec import JobSpec
from tasks.jobs.states import JobState
from tasks.jobs.windows import UNIQUE
from tasks.models import Job, JobWindow

_COLUMNS = ("digest", "kind", "queue", "name", "key", "job_id", "opened_at", "expires_at")


@cache
def _upsert_sql(vendor: str, kind: str) -> str:
    qn = connection.ops.quote_name
    table = qn(JobWindow._meta.db_table)

    def col(name: str) -> str:
        return f"{table}.{qn(name)}"

    expired = f"{col('expires_at')} <= excluded.{qn('opened_at')}"
    head = (f"INSERT INTO {table} ({', '.join(qn(c) for c in _COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) ON CONFLICT ({qn('digest')}) DO UPDATE ")
    if kind == UNIQUE:
        body = (f"SET {qn('job_id')} = excluded.{qn('job_id')}, "
                f"{qn('opened_at')} = excluded.{qn('opened_at')}, "
                f"{qn('expires_at')} = excluded.{qn('expires_at')} WHERE {expired}")
    else:
        body = (f"SET {qn('job_id')} = CASE WHEN {expired} THEN excluded.{qn('job_id')} "
                f"ELSE {col('job_id')} END, "
                f"{qn('opened_at')} = CASE WHEN {expired} THEN excluded.{qn('opened_at')} "
                f"ELSE {col('opened_at')} END, "
                f"{qn('expires_at')} = excluded.{qn('expires_at')}")
    return f"{head}{body} RETURNING {qn('job_id')}"


def digest_of(spec: JobSpec) -> str:
    return spec.window.digest(spec.queue.value, spec.name, spec.data)


def open_or_find(spec: JobSpec, job_id: str, now: datetime) -> str:
    """The job id the window holds after this add: ``job_id`` if this add opened it."""
    window = spec.window
    adapt = connection.ops.adapt_datetimefield_value
    digest = digest_of(spec)
    params = (digest, window.kind, spec.queue.value, spec.name, window.key, job_id, adapt(now),
              adapt(now + timedelta(seconds=window.seconds)))
    with bound_cursor() as cursor:
        cursor.execute(_upsert_sql(connection.vendor, window.kind), params)
        row = cursor.fetchone()
        if row is None:  # an open unique window: its job (the upsert locked the row)
            cursor.execute(_holder_sql(connection.vendor), (digest,))
            row = cursor.fetchone()
    return row[0]


@cache
def _holder_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    return (f"SELECT {qn('job_id')} FROM {qn(JobWindow._meta.db_table)} "
            f"WHERE {qn('digest')} = %s")


def replace_pending(holder: str, spec: JobSpec, now: datetime) -> bool:
    """Debounce: give the pending (delayed) job this add's data and options and its new start.

    False when the holder is no longer pending (started, promoted, removed):
    then this add's job is added and takes the window over (``hand_over``).
    """
    extras = spec.extras
    changes = {
        "data": spec.data, "priority": spec.priority, "max_attempts": spec.attempts,
        "backoff": spec.backoff, "delay_ms": int(spec.delay_s * 1000),
        "run_at": now + timedelta(seconds=spec.delay_s),
        "timeout_ms": extras.timeout_ms if extras else None,
        "soft_timeout_ms": extras.soft_timeout_ms if extras else None,
        "lifo": bool(extras and extras.lifo),
        "keep": json.loads(extras.keep_json) if extras and extras.keep_json else None,
        "expires_at": extras.expires_at if extras else None,
    }
    return bool(Job.objects.filter(pk=holder, state=JobState.DELAYED).update(**changes))


def hand_over(spec: JobSpec, job_id: str, now: datetime) -> None:
    """The window now holds ``job_id`` (its pending job had already started)."""
    JobWindow.objects.filter(pk=digest_of(spec)).update(job_id=job_id, opened_at=now)


#: Expired windows deleted per transaction by the retention pass (by primary key).
DELETE_BATCH = 2000


def delete_expired(now: datetime, batch: int = DELETE_BATCH) -> int:
    """Delete windows that expired before ``now``, a batch per transaction; return how many."""
    total = 0
    while True:
        with transaction.atomic():
            digests = list(JobWindow.objects.filter(expires_at__lt=now)
                           .values_list("digest", flat=True)[:batch])
            # No relations and no signals: Django deletes these with one statement.
            JobWindow.objects.filter(pk__in=digests, expires_at__lt=now).delete()
        total += len(digests)
        if len(digests) < batch:
            return total
