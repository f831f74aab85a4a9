"""Every frequent read of the job table is served by an index, on SQLite and PostgreSQL.

Most indexes on ``Job`` are partial (``Job.Meta``), and SQLite uses a partial
index ``WHERE state = 'delayed'`` only for a query that spells the state as a
literal. A query that binds it (``state = ?``) silently falls back to another
index or a scan of the whole table: these tests run the real read paths,
record their statements, and read the plans (``EXPLAIN QUERY PLAN`` on SQLite;
``EXPLAIN`` with sequential scans priced out on PostgreSQL, so that a plan
without an index means no index could serve it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tasks.jobs.config import QueueName
from tasks.models import Job, JobState, Literal
from tasks.operate import counts, metrics
from tasks.operate.dashboard import diagnosis, views
from tasks.operate.live import LiveStream
from tasks.upkeep import promoter, reconciler, retention
from tasks.worker import lost


def _job(n: int, state: str, **fields) -> Job:
    now = timezone.now()
    return Job(id=f"ix-{n}", queue="email", name="send-digest", state=state,
               created_at=now - timedelta(hours=1), **fields)


@pytest.fixture
def rows(db):
    now = timezone.now()
    old = now - timedelta(hours=1)
    Job.objects.bulk_create([
        _job(1, JobState.DELAYED, run_at=now - timedelta(seconds=1)),
        _job(2, JobState.WAITING, enqueued_at=old, published_at=None, priority=3),
        _job(3, JobState.WAITING, enqueued_at=old, published_at=old, priority=3),
        _job(4, JobState.ACTIVE, worker="w@host", started_at=old, enqueued_at=old,
             published_at=old, attempts_made=1),
        _job(5, JobState.COMPLETED, started_at=old, finished_at=old, attempts_made=1),
        _job(6, JobState.DELAYED, run_at=now + timedelta(minutes=5), attempts_made=1),
        _job(7, JobState.WAITING, enqueued_at=old, published_at=old, priority=1,
             parent_id="ix-3", group_id="g-1", group_index=0),
    ])
    return Job.objects.get(pk="ix-3")


def _plans(run: Callable[[], object]) -> list[tuple[str, str]]:
    """(statement, plan) of every statement on the job table not addressed by primary key.

    Runs ``run`` in a transaction that is rolled back; broker calls are stubbed.
    """
    statements: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        where = sql.partition(" WHERE ")[2].lstrip("(")
        if (not many and '"tasks_job"' in sql and where
                and not where.startswith(('"tasks_job"."id" IN', '"tasks_job"."id" ='))):
            statements.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with mock.patch.object(promoter, "publish", lambda messages, claimed=False: []), \
            mock.patch.object(reconciler, "publish", lambda messages, claimed=False: []), \
            mock.patch.object(reconciler, "_redis_message_ids", lambda queue: set()), \
            transaction.atomic():
        with connection.execute_wrapper(record):
            run()
        plans = [(sql, _plan(sql, params)) for sql, params in statements]
        transaction.set_rollback(True)
    assert plans, "no statement on the job table was recorded"
    return plans


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return "\n".join(row[-1] for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _uses(plan: str, index: str) -> bool:
    if connection.vendor == "sqlite":
        return f"INDEX {index} " in plan or plan.endswith(f"INDEX {index}")
    return f" on {index}" in plan or f" using {index} " in plan


def _scans_table(plan: str) -> bool:
    """A read of the whole table, or of a whole index (SQLite's ``SCAN … USING INDEX``)."""
    if connection.vendor == "sqlite":
        return "SCAN tasks_job" in plan
    return "Seq Scan on tasks_job" in plan


READ_PATHS = {
    # name: (call, index its selective statement must use)
    "promoter due": (lambda job: promoter.promote_due(), "job_due"),
    "outbox relay": (lambda job: promoter.relay_unpublished(timezone.now()), "job_unpublished"),
    "lost messages": (lambda job: reconciler.reconcile_waiting(stuck_after_s=60),
                      "job_waiting_published"),
    "position in queue": (lambda job: diagnosis.reasons(
        job, diagnosis.QueueSituation(paused=False, consumers=["w"], busy=True)),
        "job_waiting_ahead"),
    "orphans of a worker": (lambda job: lost.requeue_lost("w@host", exclude_ids=["x"]),
                            "job_queue_state_created"),
    "active jobs of gone workers": (lambda job: reconciler.reconcile_active(
        timezone.now() + timedelta(hours=1)), "job_queue_state_created"),
    "retention": (lambda job: retention.keep_newest(QueueName.EMAIL, JobState.COMPLETED, 0),
                  "job_finished"),
    "live events: new and active jobs": (lambda job: LiveStream(None, 1.0, False).scan(),
                                         "job_queue_state_created"),
    "live events: finished jobs": (lambda job: LiveStream(None, 1.0, False).scan(),
                                   "job_finished"),
    "a job page's children": (lambda job: views._workflow(job), "job_children"),
    "a parent's children results": (lambda job: list(Job.objects.children_of(job.pk)
                                                     .filter(state="completed")),
                                    "job_children"),
    "metrics: jobs awaiting retry": (lambda job: list(metrics.JobCollector()
                                                      ._state_gauges(timezone.now())),
                                     "job_retry_wait"),
    "oldest waiting job": (lambda job: counts.oldest_waiting(QueueName.EMAIL),
                           "job_waiting_ahead"),
}


@pytest.mark.parametrize("path", READ_PATHS)
def test_read_path_uses_its_index(rows, path):
    call, index = READ_PATHS[path]
    plans = _plans(lambda: call(rows))
    accepted = [index]
    if connection.vendor == "postgresql" and index == "job_finished":
        # A few rows: PostgreSQL prices (queue, state, created_at) + a filter on finished_at
        # the same as job_finished (both 8.30 in CI) and may take either; still an index.
        accepted.append("job_queue_state_created")
    assert any(_uses(plan, name) for _sql, plan in plans for name in accepted), \
        f"{path}: no statement uses {index}:\n" + "\n\n".join(f"{s}\n{p}" for s, p in plans)
    scans = [(sql, plan) for sql, plan in plans if _scans_table(plan)]
    assert not scans, f"{path} scans the job table:\n" + "\n\n".join(
        f"{s}\n{p}" for s, p in scans)


@pytest.mark.skipif(connection.vendor != "sqlite",
                    reason="SQLite only: PostgreSQL plans every query with its values")
@pytest.mark.parametrize("queryset, index", [
    (lambda now: Job.objects.due(now), "job_due"),
    (lambda now: Job.objects.unpublished(now), "job_unpublished"),
    (lambda now: Job.objects.waiting(QueueName.EMAIL).filter(published_at__lt=now),
     "job_waiting_published"),
    (lambda now: Job.objects.waiting(QueueName.EMAIL).filter(priority__lt=3),
     "job_waiting_ahead"),
    (lambda now: Job.objects.children_of("ix-3"), "job_children"),
    (lambda now: Job.objects.group_members("g-1").order_by("group_index"),
     "job_group_members"),
    (lambda now: Job.objects.awaiting_retry(QueueName.EMAIL), "job_retry_wait"),
])
def test_partial_index_is_chosen_from_the_statement_text_alone(db, queryset, index):
    """The literal state, not the bound values, makes the partial index usable.

    SQLite plans a statement before its values are bound; it re-plans once
    they are, which can then match ``state = ?`` to ``WHERE state = 'delayed'``.
    With every value NULL (nothing to match) the plan must still use the
    index: with a bound ``state`` it becomes a scan of the whole table.
    """
    sql, params = queryset(timezone.now()).query.sql_with_params()
    assert _uses(_plan(sql, [None] * len(params)), index)
    bound = Job.objects.filter(state=JobState.DELAYED, run_at__lte=timezone.now())
    sql, params = bound.query.sql_with_params()
    assert _scans_table(_plan(sql, [None] * len(params)))


def test_the_job_table_keeps_no_index_that_no_query_reads(db):
    """Migration 0005: PostgreSQL's ``_like`` index beside the text primary key is gone.

    The expected set is every index the model declares, plus the primary key's.
    """
    declared = {index.name for index in Job._meta.indexes}
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Job._meta.db_table)
    found = {name for name, info in constraints.items()
             if info["index"] and not info["primary_key"] and not info["unique"]}
    assert found == declared


@pytest.mark.parametrize("value", ["waiting", JobState.DELAYED, "", 0, 3])
def test_a_literal_is_written_into_the_statement(value):
    sql, params = Literal(value).as_sql(None, None)
    assert params == [] and sql == (str(value) if isinstance(value, int) else f"'{value}'")


@pytest.mark.parametrize("value", ["x' OR '1'='1", "nope", True, 1.5, None])
def test_a_literal_takes_only_constants_of_the_code(value):
    with pytest.raises(TypeError, match="not a literal"):
        Literal(value)
