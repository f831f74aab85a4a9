"""The hot-path cursor (``tasks.enqueue.cursors.bound_cursor``) behaves as Django's own would."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from tasks.enqueue.cursors import bound_cursor
from tasks.models import Job

TABLE = Job._meta.db_table


def test_given_a_statement_with_placeholders_then_rows_are_written_and_counted(transactional_db):
    with bound_cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (id, queue, name, data, priority, state, "
                       "attempts_made, max_attempts, backoff, delay_ms, progress, errors, worker, "
                       "cancel_requested, lost_count, created_at) VALUES (%s, %s, %s, %s, %s, %s, "
                       "0, 1, %s, 0, %s, %s, '', %s, 0, %s)",
                       ["c-1", "analytics", "n", "{}", 3, "waiting", "{}", "0", "[]", False,
                        connection.ops.adapt_datetimefield_value(timezone.now())])
        assert cursor.rowcount == 1
        cursor.execute(f"SELECT id, priority FROM {TABLE} WHERE id = %s", ["c-1"])
        assert cursor.fetchone() == ("c-1", 3)


def test_given_a_constraint_violation_then_djangos_integrity_error_is_raised(transactional_db):
    with pytest.raises(IntegrityError), bound_cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", [None])


def test_given_bad_sql_then_djangos_error_class_is_raised(transactional_db):
    with pytest.raises(OperationalError if connection.vendor == "sqlite" else Exception) as caught:
        with transaction.atomic(), bound_cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM " + TABLE)
    assert type(caught.value).__module__.startswith("django.db")
