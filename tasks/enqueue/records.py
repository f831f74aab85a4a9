"""Writing job records: the one path every enqueue takes (``add_job``, ``.delay()``, beat).

Rows go in with one raw ``INSERT … ON CONFLICT (id) DO NOTHING`` per call
(``executemany`` or ``COPY`` for a bulk) rather than through the ORM, whose
per-field preparation and model instances cost most of ``add_bulk``; the
conflict clause deduplicates a caller-chosen id without a SELECT.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import connection, transaction
from django.utils import timezone

from tasks.enqueue import lifo, ratelimits, windows
from tasks.enqueue.cursors import bound_cursor
from tasks.enqueue.publishing import Message, publish_on_commit, stamps_at_insert
from tasks.jobs.ids import new_job_id
from tasks.jobs.rates import Rate
from tasks.jobs.routing import task_name
from tasks.jobs.spec import JobSpec
from tasks.jobs.timeouts import header_limits
from tasks.jobs.windows import UNIQUE
from tasks.models import Job, JobState

logger = logging.getLogger("tasks.jobs")

#: Columns the enqueue sets; every other column takes its model default.
_SET = ("id", "queue", "name", "data", "priority", "state", "max_attempts", "backoff",
        "delay_ms", "run_at", "created_at", "enqueued_at", "published_at")
#: Set too for a job of a Celery canvas (rare: plain jobs keep the shorter INSERT).
_EXTRA = ("parent_id", "group_id", "group_index", "canvas", "expires_at", "keep",
          "timeout_ms", "soft_timeout_ms", "lifo")
_JSON_COLUMNS = ("data", "backoff", "canvas", "keep")


@lru_cache(maxsize=8)
def _insert_sql(vendor: str, extras: bool = False) -> tuple[str, tuple]:
    """The INSERT statement and the default values of the columns it does not set."""
    chosen = (*_SET, *_EXTRA) if extras else _SET
    fields = [field for field in Job._meta.concrete_fields if field.attname not in chosen]
    defaults = tuple(field.get_db_prep_save(field.get_default(), connection) for field in fields)
    columns = [*chosen, *(field.column for field in fields)]
    quote = connection.ops.quote_name
    placeholders = ["%s::jsonb" if vendor == "postgresql" and column in _JSON_COLUMNS
                    else "%s" for column in chosen]
    placeholders += ["%s"] * len(fields)
    sql = (
        f"INSERT INTO {quote(Job._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(placeholders)}) ON CONFLICT ({quote('id')}) DO NOTHING"
    )
    return sql, defaults


class _Rows:
    """Builds the INSERT's rows for one enqueue: what all its rows share is worked out once."""

    def __init__(self, now: datetime, stamped: bool) -> None:
        """``stamped``: rows are marked published already (``publishing.stamps_at_insert``)."""
        self.now = now
        self.adapt = connection.ops.adapt_datetimefield_value
        self.stamp = self.adapt(now)
        self.stamped = stamped
        self.published = self.stamp if stamped else None
        self.sql, self.defaults = _insert_sql(connection.vendor)
        self._backoffs: dict[int, tuple[dict, str]] = {}  # presets are shared dicts

    def row(self, spec: JobSpec, job_id: str) -> tuple:
        delayed = spec.delay_s > 0
        cached = self._backoffs.get(id(spec.backoff))
        if cached is None or cached[0] is not spec.backoff:
            cached = (spec.backoff, json.dumps(spec.backoff, separators=(",", ":")))
            self._backoffs[id(spec.backoff)] = cached
        return (
            job_id,
            spec.queue.value,
            spec.name,
            spec.data_json if spec.data_json is not None else json.dumps(spec.data),
            spec.priority,
            JobState.DELAYED.value if delayed else JobState.WAITING.value,
            spec.attempts,
            cached[1],
            int(spec.delay_s * 1000),
            self.adapt(self.now + timedelta(seconds=spec.delay_s)) if delayed else None,
            self.stamp,
            None if delayed else self.stamp,
            None if delayed else self.published,
            *self.defaults,
        )

    def with_extras(self, spec: JobSpec, row: tuple) -> tuple[str, tuple]:
        """The INSERT and row of a job with ``spec.extras`` (canvas place, own retention,
        own time limits, LIFO)."""
        extras = spec.extras
        sql, defaults = _insert_sql(connection.vendor, extras=True)
        expires = extras.expires_at
        if extras.waits_for_children:
            row = list(row)
            for column, value in (("state", JobState.WAITING_CHILDREN.value), ("run_at", None),
                                  ("enqueued_at", None), ("published_at", None)):
                row[_SET.index(column)] = value
        return sql, (*row[:len(_SET)], extras.parent_id, extras.group_id,
                     extras.group_index, extras.canvas_json,
                     self.adapt(expires) if expires is not None else None, extras.keep_json,
                     extras.timeout_ms, extras.soft_timeout_ms, extras.lifo, *defaults)


def _insert_many(sql: str, rows: list[tuple], fresh_ids: bool = False) -> None:
    """SQLite: ``executemany``. PostgreSQL: ``COPY`` when every id was made here, else one INSERT.

    ``COPY`` is PostgreSQL's bulk-load path but cannot skip existing rows, so a
    batch with caller-chosen ids (``ON CONFLICT DO NOTHING``) takes one INSERT
    from one array per column (``unnest``), sent as binary parameters (``%b``)
    rather than quoted into the text by Django. Figures: docs/performance.md.
    """
    if connection.vendor != "postgresql":
        with bound_cursor() as cursor:
            cursor.executemany(sql, rows)
        return
    if fresh_ids:
        with bound_cursor() as cursor, cursor.copy(_copy_sql()) as copy:
            for row in rows:
                copy.write_row(row)
        return
    width = len(_SET)
    # The defaults come first in the statement (SELECT list), then one array per column.
    params = [*rows[0][width:], *([row[i] for row in rows] for i in range(width))]
    with bound_cursor() as cursor:
        cursor.execute(_unnest_sql(), params)


@lru_cache(maxsize=1)
def _column_names() -> str:
    """The job table's columns in the order of ``_Rows.row``: the set ones, then the defaulted."""
    quote = connection.ops.quote_name
    fields = {field.attname: field for field in Job._meta.concrete_fields}
    rest = [field for name, field in fields.items() if name not in _SET]
    return ", ".join([*(quote(fields[name].column) for name in _SET),
                      *(quote(field.column) for field in rest)])


@lru_cache(maxsize=1)
def _copy_sql() -> str:
    return f"COPY {connection.ops.quote_name(Job._meta.db_table)} ({_column_names()}) FROM STDIN"


@lru_cache(maxsize=1)
def _unnest_sql() -> str:
    fields = {field.attname: field for field in Job._meta.concrete_fields}
    quote = connection.ops.quote_name
    rest = [field for name, field in fields.items() if name not in _SET]
    arrays = ", ".join(  # ``%b``: psycopg sends the parameter in binary
        f"%b::{'text' if fields[name].db_type(connection) == 'jsonb' else _base(fields[name])}[]"
        for name in _SET
    )
    columns = ", ".join(
        f"c{i}::jsonb" if fields[name].db_type(connection) == "jsonb" else f"c{i}"
        for i, name in enumerate(_SET)
    )
    defaults = ", ".join(f"%s::{_base(field)}" for field in rest)
    aliases = ", ".join(f"c{i}" for i in range(len(_SET)))
    return (
        f"INSERT INTO {quote(Job._meta.db_table)} ({_column_names()}) "
        f"SELECT {columns}, {defaults} FROM unnest({arrays}) AS t({aliases}) "
        f"ON CONFLICT ({quote('id')}) DO NOTHING"
    )


def _base(field) -> str:
    """The column type without length or check (``varchar(255)`` -> ``varchar``)."""
    db_type = field.db_type(connection)
    if db_type.startswith("timestamp with time zone"):
        return "timestamptz"
    return db_type.split("(")[0].split(" ")[0]


def _message(spec: JobSpec, job_id: str) -> Message:
    extras = spec.extras
    if extras is None:
        return Message(job_id, task_name(spec.queue, spec.name), spec.queue.value, spec.data,
                       spec.priority, spec.data_json)
    return Message(job_id, task_name(spec.queue, spec.name), spec.queue.value, spec.data,
                   spec.priority, spec.data_json,
                   limits=header_limits(extras.timeout_ms, extras.soft_timeout_ms),
                   lifo=extras.lifo)


#: A job under a rate limit is written delayed by this much (due at once): the promoter
#: releases it through the rate gate instead of it being published now.
GATED_DELAY_S = 0.001


def _gated(spec: JobSpec, limits: dict[ratelimits.Key, Rate]) -> JobSpec:
    """A job of a rate-limited queue or job name waits as a due delayed row (``ratelimits``).

    ``limits`` is ``ratelimits.current()``, read once per call: reading it costs
    a cache lookup (~15 µs with the local-memory cache, about half of what
    ``add_bulk`` spends on a job besides it), so ``enqueue_many`` reads it once.
    """
    if spec.delay_s > 0 or not limits or not ratelimits.keys_of(spec.queue.value, spec.name,
                                                                 limits):
        return spec
    return dataclasses.replace(spec, delay_s=GATED_DELAY_S)


def enqueue(spec: JobSpec) -> str:
    """Record one job in the caller's transaction; publish it after commit.

    A caller-chosen ``job_id`` that already exists adds nothing and returns
    that id (deduplication); so does an open ``unique_for`` window, and a
    ``debounce`` window replaces its pending job's data instead
    (``tasks.enqueue.windows``). Delayed jobs are not published here: the
    promoter sends them when they fall due.
    """
    lifo.check([spec])
    if spec.window is not None:
        with transaction.atomic():  # the window and its job: both or neither
            return _enqueue_in_window(spec)
    return _insert(spec, spec.job_id or new_job_id())


def _enqueue_in_window(spec: JobSpec) -> str:
    now = timezone.now()
    job_id = spec.job_id or new_job_id()
    holder = windows.open_or_find(spec, job_id, now)
    if holder == job_id:
        return _insert(spec, job_id, now)
    if spec.window.kind == UNIQUE or windows.replace_pending(holder, spec, now):
        logger.debug("job %s: held by a %s window, nothing added", holder, spec.window.kind)
        return holder
    windows.hand_over(spec, job_id, now)  # its pending job already started
    return _insert(spec, job_id, now)


def _insert(spec: JobSpec, job_id: str, now: datetime | None = None) -> str:
    spec = _gated(spec, ratelimits.current())
    rows = _Rows(now or timezone.now(), stamps_at_insert())
    sql, row = rows.sql, rows.row(spec, job_id)
    if spec.extras is not None:
        sql, row = rows.with_extras(spec, row)
    with bound_cursor() as cursor:
        cursor.execute(sql, row)
        inserted = cursor.rowcount
    if not inserted:  # the id exists: an earlier or concurrent enqueue won
        return job_id
    if spec.delay_s <= 0 and not (spec.extras and spec.extras.waits_for_children):
        publish_on_commit([_message(spec, job_id)], claimed=rows.stamped)
    logger.debug("job %s added", job_id,
                 extra={"job_id": job_id, "queue": spec.queue.value, "job_name": spec.name})
    return job_id


def enqueue_many(specs: Sequence[JobSpec]) -> list[str]:
    """Record many jobs in one transaction and publish them in one batch after commit.

    Caller-chosen ids that already exist are skipped (their ids are returned).
    Rows and messages are built before the transaction starts: on SQLite it
    holds the database's one write lock from its first statement, and the
    workers' claims and completions wait for it meanwhile (as do the
    CRITICAL jobs of this very call, if the workers are busy).
    """
    lifo.check(specs)
    if any(spec.window is not None for spec in specs):
        with transaction.atomic():  # windows decided one by one, in the same transaction
            plain = [spec for spec in specs if spec.window is None]
            added = iter(enqueue_many(plain) if plain else [])
            return [enqueue(spec) if spec.window is not None else next(added) for spec in specs]
    ids = [spec.job_id or new_job_id() for spec in specs]
    limits = ratelimits.current()
    specs = [_gated(spec, limits) for spec in specs]
    builder = _Rows(timezone.now(), stamps_at_insert())
    seen: set[str] = set()
    entries = []  # (job id, row, message or None, extras INSERT or None), one per distinct id
    for spec, job_id in zip(specs, ids, strict=True):
        if job_id in seen:
            continue
        seen.add(job_id)
        row = builder.row(spec, job_id)
        special = builder.with_extras(spec, row) if spec.extras is not None else None
        entries.append((job_id, row, _message(spec, job_id) if spec.delay_s <= 0 else None,
                        special))
    wanted = [spec.job_id for spec in specs if spec.job_id is not None]
    with transaction.atomic():
        if wanted:
            existing = set(Job.objects.filter(pk__in=wanted).values_list("id", flat=True))
            entries = [entry for entry in entries if entry[0] not in existing]
        plain = [row for _, row, _, special in entries if special is None]
        if plain:
            _insert_many(builder.sql, plain, fresh_ids=not wanted)
        with bound_cursor() as cursor:  # jobs with extras (own retention): one by one
            for _, _, _, special in entries:
                if special is not None:
                    cursor.execute(*special)
        publish_on_commit([message for _, _, message, _ in entries if message is not None],
                          claimed=builder.stamped)
    logger.info("%d job(s) added in bulk", len(entries))
    return ids
