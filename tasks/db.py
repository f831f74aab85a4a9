"""Database helpers for the enqueue and publish hot paths."""

from __future__ import annotations

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
