"""State transitions of a job record, each one guarded UPDATE by primary key.

These functions know nothing of Celery: the worker-side task class and the
operator actions call them. A transition that finds the job in another
state changes nothing and reports so.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tasks.enqueue.cursors import bound_cursor, without_wal_wait
from tasks.models import Job, JobLog, JobState


@dataclass(frozen=True)
class Claim:
    """What a worker learns when it wins the compare-and-set from waiting to active.

    ``worker`` and ``started_at`` identify this run: the transitions that end it
    match them, so a run the reconciler gave up on (its host was cut off, then
    came back) cannot finish, fail or cancel the job another worker now runs.
    """

    attempts_made: int
    max_attempts: int
    backoff: dict
    worker: str
    started_at: datetime
    #: The row's queue, job name and data: the job a message may run is its record's.
    queue: str = ""
    name: str = ""
    data: dict | None = None
    #: Its place in a Celery canvas: what to apply after it, its chord group, its expiry.
    canvas: dict | None = None
    group_id: str = ""
    expires_at: datetime | None = None

    @property
    def continues(self) -> bool:
        """True when its end starts other work (a chain, a link, a chord's counter)."""
        return bool(self.canvas or self.group_id)


_RESULT_FIELD = Job._meta.get_field("result")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


@functools.cache
def _claim_sql(vendor: str, many: int = 0) -> str:
    """Built once per database vendor (and batch size): it runs for every job.

    ``many``: the claim of a batch, ``id IN (…)`` of that many ids, each row's
    id returned first.
    """
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    ids = (f"IN ({', '.join(['%s'] * many)})" if many else "= %s")
    returned = f"{table}.{qn('id')}, " if many else ""
    return (
        f"UPDATE {table} SET {qn('state')} = %s, {qn('started_at')} = %s, "
        f"{qn('worker')} = %s, {qn('attempts_made')} = {table}.{qn('attempts_made')} + 1"
        f"{without_wal_wait(vendor)} "
        f"WHERE {table}.{qn('id')} {ids} AND {table}.{qn('state')} = %s "
        f"RETURNING {returned}{table}.{qn('attempts_made')}, {table}.{qn('max_attempts')}, "
        f"{table}.{qn('backoff')}, {table}.{qn('queue')}, {table}.{qn('name')}, "
        f"{table}.{qn('data')}, {table}.{qn('canvas')}, {table}.{qn('group_id')}, "
        f"{table}.{qn('expires_at')}"
    )


@functools.cache
def _complete_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    return (
        f"UPDATE {table} SET {qn('state')} = %s, {qn('result')} = %s, {qn('finished_at')} = %s"
        f"{without_wal_wait(vendor)} "
        f"WHERE {table}.{qn('id')} = %s AND {table}.{qn('state')} = %s "
        f"AND {table}.{qn('worker')} = %s AND {table}.{qn('started_at')} = %s"
    )


def claim(job_id: str, worker: str, now: datetime | None = None) -> Claim | None:
    """Move a job from waiting to active in one statement; None if it was not waiting.

    ``UPDATE … RETURNING`` (SQLite ≥ 3.35, PostgreSQL) saves the SELECT a
    second round trip would cost on every job; it returns the row's queue,
    name and data, which the worker runs (not the message's).
    """
    now = now or timezone.now()
    sql = _claim_sql(connection.vendor)
    params = [
        JobState.ACTIVE.value,
        connection.ops.adapt_datetimefield_value(now),
        worker[:255],
        job_id,
        JobState.WAITING.value,
    ]
    row = _reconnecting(_fetchone, sql, params)
    if row is None:
        return None
    return _claim_from(row, worker[:255], now)


def _claim_from(row: tuple, worker: str, now: datetime) -> Claim:
    return Claim(attempts_made=row[0], max_attempts=row[1], backoff=_json(row[2]) or {},
                 worker=worker, started_at=now, queue=row[3], name=row[4],
                 data=_json(row[5]), canvas=_json(row[6]) if row[6] is not None else None,
                 group_id=row[7] or "", expires_at=_aware(row[8]))


def claim_many(job_ids: list[str], worker: str, now: datetime | None = None) -> dict[str, Claim]:
    """``claim`` for a batch: one statement for every id; the ones it won, by id.

    Ids not waiting (a duplicate delivery, a cancelled job, an id with no row)
    are not in the result. A connection dropped while idle is retried once on
    a new one, as ``claim`` does: a first attempt that committed left the jobs
    active, so the second claims none of them and the orphan sweep re-queues them.
    """
    if not job_ids:
        return {}
    now = now or timezone.now()
    sql = _claim_sql(connection.vendor, len(job_ids))
    params = [JobState.ACTIVE.value, connection.ops.adapt_datetimefield_value(now),
              worker[:255], *job_ids, JobState.WAITING.value]
    rows = _reconnecting(_fetchall, sql, params)
    return {row[0]: _claim_from(row[1:], worker[:255], now) for row in rows}


def _reconnecting(fetch: Any, sql: str, params: list) -> Any:
    """``fetch(sql, params)``, once more on a new connection if the server dropped this one.

    The worker skips Django's per-task health check (tasks.worker.bootstep): a
    connection the server dropped while idle shows up at the claim, once. Had
    the first attempt committed before the connection died, the retry finds the
    jobs active and skips them; the worker's orphan sweep re-queues them.
    """
    try:
        return fetch(sql, params)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block or connection.is_usable():
            raise
        connection.close()
        return fetch(sql, params)


def _aware(value: Any) -> datetime | None:
    """A datetime column as read by a raw cursor (text on SQLite), timezone-aware."""
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return value
    moment = parse_datetime(value) if isinstance(value, str) else value
    return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment


def _fetchone(sql: str, params: list) -> tuple | None:
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _fetchall(sql: str, params: list) -> list[tuple]:
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _this_run(job_id: str, run: Claim):
    """The job's row, if it is still active in ``run`` (not re-queued and claimed again)."""
    return Job.objects.filter(pk=job_id, state=JobState.ACTIVE, worker=run.worker,
                              started_at=run.started_at)


def complete(job_id: str, result: Any, *, run: Claim, now: datetime | None = None) -> bool:
    """Move a job from active to completed with its result; False if it was not active in ``run``.

    One ``UPDATE`` by primary key, like ``claim``: the ORM's ``update()``
    spent more time building the query than the database spent running it.
    """
    now = now or timezone.now()
    sql = _complete_sql(connection.vendor)
    params = [
        JobState.COMPLETED.value,
        _RESULT_FIELD.get_db_prep_save(result, connection),
        connection.ops.adapt_datetimefield_value(now),
        job_id,
        JobState.ACTIVE.value,
        run.worker,
        connection.ops.adapt_datetimefield_value(run.started_at),
    ]
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def complete_many(done: list[tuple[str, Any, Claim]], now: datetime | None = None) -> int:
    """``complete`` for several runs (job id, result, run) in one transaction; how many held.

    A batch's completions, written together: one commit (one WAL flush on
    SQLite) instead of one per job. Each row is still guarded by its run.
    """
    if not done:
        return 0
    now_db = connection.ops.adapt_datetimefield_value(now or timezone.now())
    runs = [(job_id, _RESULT_FIELD.get_db_prep_save(result, connection), run.worker,
             connection.ops.adapt_datetimefield_value(run.started_at))
            for job_id, result, run in done]
    if connection.vendor == "postgresql":
        params = [JobState.COMPLETED.value, now_db, *(v for row in runs for v in row),
                  JobState.ACTIVE.value]
        with bound_cursor() as cursor:
            cursor.execute(_complete_many_sql(len(done)), params)
            return cursor.rowcount
    rows = [(JobState.COMPLETED.value, result, now_db, job_id, JobState.ACTIVE.value, worker,
             started_at) for job_id, result, worker, started_at in runs]
    with transaction.atomic(), bound_cursor() as cursor:
        cursor.executemany(_complete_sql(connection.vendor), rows)
        return cursor.rowcount


@functools.cache
def _complete_many_sql(many: int) -> str:
    """PostgreSQL: a batch's completions as one ``UPDATE … FROM (VALUES …)`` statement.

    One statement is planned and committed once for the whole batch, where
    ``executemany`` runs (and the server plans) one ``UPDATE`` per job.
    """
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    values = ", ".join(["(%s, %s::jsonb, %s, %s::timestamptz)"] * many)
    return (
        f"UPDATE {table} SET {qn('state')} = %s, {qn('result')} = done.result, "
        f"{qn('finished_at')} = %s{without_wal_wait('postgresql')}, "
        f"(VALUES {values}) AS done (id, result, worker, started_at) "
        f"WHERE {table}.{qn('id')} = done.id AND {table}.{qn('state')} = %s "
        f"AND {table}.{qn('worker')} = done.worker "
        f"AND {table}.{qn('started_at')} = done.started_at"
    )


def record_failure(
    job_id: str,
    error_entry: dict,
    retry_in: timedelta | None,
    now: datetime | None = None,
    *,
    run: Claim,
) -> str | None:
    """Store a failed attempt; delayed until ``now + retry_in`` or failed for good.

    Returns the new state, or None when the job was no longer active in ``run``.
    """
    now = now or timezone.now()
    with transaction.atomic():
        errors = list(_this_run(job_id, run).values_list("errors", flat=True)[:1])
        if not errors:
            return None
        history = [*(errors[0] or []), error_entry]
        if retry_in is None:
            changed = _this_run(job_id, run).update(
                state=JobState.FAILED, errors=history, finished_at=now
            )
            return JobState.FAILED if changed else None
        changed = _this_run(job_id, run).update(
            state=JobState.DELAYED, errors=history, run_at=now + retry_in, published_at=None
        )
        return JobState.DELAYED if changed else None


def release(job_id: str, *, run: Claim) -> bool:
    """Undo a claim that must not run (its message disagrees with the row): waiting again.

    The attempt is not counted, and ``published_at`` is cleared so the
    promoter's relay publishes the job afresh from its row: the message that
    was meant for it may have been taken meanwhile (a delivery finding the job
    active is dropped as a duplicate). A message still queued for it runs it
    once, like any duplicate.
    """
    return bool(_this_run(job_id, run).update(
        state=JobState.WAITING, attempts_made=F("attempts_made") - 1, worker="",
        started_at=None, published_at=None,
    ))


def hold(job_id: str, until: datetime, *, run: Claim) -> bool:
    """Back to delayed until ``until``, this attempt not counted (the provider said "slow down")."""
    return bool(_this_run(job_id, run).update(
        state=JobState.DELAYED, run_at=until, published_at=None,
        attempts_made=F("attempts_made") - 1))


def mark_cancelled(job_id: str, now: datetime | None = None, *, run: Claim) -> bool:
    now = now or timezone.now()
    return bool(_this_run(job_id, run).update(state=JobState.CANCELLED, finished_at=now))


def set_progress(job_id: str, progress: Any) -> None:
    Job.objects.filter(pk=job_id).update(progress=progress)


def append_log(job_id: str, message: str) -> None:
    JobLog.objects.create(job_id=job_id, message=message)


def cancel_requested(job_id: str) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()
