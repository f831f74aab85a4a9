"""Database cursors for the hot paths (enqueue, publish, claim, complete) and their commit mode."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper


def raw_cursor() -> CursorWrapper:
    """A cursor on the default database without ``DEBUG``'s query log.

    With ``DEBUG`` on (``settings.dev``) Django logs every statement and, on
    SQLite, re-quotes every parameter with an extra query: measured as much
    as the INSERT itself. Errors are still Django's (``IntegrityError`` …)
    and ``connection.execute_wrapper`` hooks still run.
    """
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        return connection.make_cursor(connection.create_cursor())


@contextmanager
def bound_cursor() -> Iterator[Any]:
    """A cursor for the per-job statements (the enqueue INSERT, claim, completion).

    PostgreSQL: a psycopg cursor binding server-side on Django's own
    connection (Django's binds client-side, quoting every value in Python).
    SQLite: Django's cursor given each statement's ``?`` form once (Django
    converts ``%s`` with a regular expression on every call). Errors are still
    Django's; the query log and ``execute_wrapper`` hooks do not see these
    statements. Costs measured: docs/performance.md. Elsewhere ``raw_cursor``.
    """
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.validate_thread_sharing()
        cursor = connection.create_cursor()
        try:
            yield _QmarkCursor(cursor)
        finally:
            cursor.close()
        return
    if connection.vendor != "postgresql":
        with raw_cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


class _QmarkCursor:
    """Django's SQLite cursor, run with ``?`` placeholders converted once per statement."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Any = ()) -> Any:
        with connection.wrap_database_errors:
            return sqlite3.Cursor.execute(self._cursor, _qmark(sql), params)

    def executemany(self, sql: str, rows: Any) -> Any:
        with connection.wrap_database_errors:
            return sqlite3.Cursor.executemany(self._cursor, _qmark(sql), rows)

    def __getattr__(self, name: str) -> Any:  # rowcount, fetchone, fetchall …
        return getattr(self._cursor, name)


@lru_cache(maxsize=256)
def _qmark(sql: str) -> str:
    """Django's ``%s`` → ``?`` conversion (``SQLiteCursorWrapper.convert_query``), remembered."""
    return _FORMAT.sub("?", sql).replace("%%", "%")


_FORMAT = re.compile(r"(?<!%)%s")


def without_wal_wait(vendor: str) -> str:
    """A ``FROM`` item turning off ``synchronous_commit`` for this statement's transaction.

    PostgreSQL only (empty elsewhere), for bookkeeping marks that are not a
    job's effect: the claim, the completion and the publish stamp. A mark lost
    in a database crash (never in an application crash) is recovered as a
    re-run or a duplicate message that the claim's compare-and-set runs once
    (docs/reliability.md); the processor's own writes keep synchronous commits
    and flush every earlier mark with them. One statement, so one round trip,
    and still autocommit (``SET LOCAL`` would need a transaction).
    """
    if vendor != "postgresql":
        return ""
    return " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
