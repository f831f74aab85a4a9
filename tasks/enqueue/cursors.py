"""Database cursors for the hot paths: enqueue, publish, claim and complete."""

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

    On PostgreSQL a psycopg cursor with server-side binding on Django's own
    connection (Django's cursors bind client-side): the parameters travel
    apart from the text instead of being quoted into it in Python, and
    Django's cursor wrapper is skipped. Measured on the VM: 1.2 → 0.87 ms of
    wall and 480 → 240 µs of client CPU per job (claim and completion). Django
    leaves psycopg's automatic preparing off (``prepare_threshold`` None, for
    connection poolers); ``"prepare_threshold": 5`` in the database OPTIONS
    turns it on, and these statements are then also spared the server's
    parse and plan. On SQLite, Django's cursor without its wrapper, given each
    statement's ``?`` form once (Django converts ``%s`` with a regular
    expression on every call): ~25 µs less per statement, i.e. per claim,
    completion and ``add_job``. Errors are still Django's; the query log and
    ``execute_wrapper`` hooks are not run for these statements. Elsewhere
    ``raw_cursor``.
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
