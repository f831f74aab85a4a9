"""Inside one benchmark child process: the database, the broker, and each system's producer.

``bench/child.py`` imports this after choosing the database (Django reads
``DATABASE_URL`` once, at set-up), so each database gets its own child.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bullmq
from bench.harness import QUEUES, SYSTEMS, Worker, queue_depth

BATCH = 1000
#: The caller's own table for scenario 1b (``bench/throughput.py``): one row written per enqueue, in the same
#: transaction, the way a Django view saves an order and enqueues its e-mail.
ORDER_TABLE = "bench_order"


def ensure_order_table() -> None:
    """Create ``ORDER_TABLE`` (raw SQL: the bench has no Django app of its own)."""
    from django.db import connection

    key = "BIGSERIAL PRIMARY KEY" if connection.vendor == "postgresql" else (
        "INTEGER PRIMARY KEY AUTOINCREMENT")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ORDER_TABLE} (id {key}, note TEXT NOT NULL)")


def write_order() -> None:
    """The caller's own write: one row, through Django's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {ORDER_TABLE} (note) VALUES (%s)", ["bench"])


def order_count() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {ORDER_TABLE}")
        return cursor.fetchone()[0]


@dataclass
class Context:
    """What every scenario function receives."""

    env: dict[str, str]
    tmp: Path
    database: str  # "sqlite" or "postgresql"
    short: bool
    broker: Any  # redis.Redis on the broker's db
    counter: Any  # redis.Redis on the counter db (probes write there)
    results: dict = field(default_factory=dict)  # earlier scenarios' figures (capacity)
    #: The systems scenarios 1–3 and 5 measure (``--fastpaths`` runs the service alone).
    systems: tuple[str, ...] = SYSTEMS
    #: redis.Redis on BullMQ's own database, when "bullmq" is one of ``systems``.
    bullmq: Any = None
    _serial: int = 0
    _bullmq_side: Any = None

    def worker(
        self, system: str, tag: str, *, pool: str = "prefork", concurrency: int = 2
    ) -> Worker:
        """A Celery worker; for BullMQ a Node process (no pool choice: one process,
        ``concurrency`` jobs at once)."""
        self._serial += 1
        log = self.tmp / f"worker-{self.database}-{tag}-{system}-{self._serial}.log"
        if system == "bullmq":
            return bullmq.NodeWorker(self.env, log, concurrency=concurrency)
        return Worker(system, self.env, log, pool=pool, concurrency=concurrency)

    def ensure_own_server(self) -> None:
        """Refuse to flush any server but the suite's own private one.

        ``bench/suite.py`` starts it in a temporary directory and names that
        directory in ``BENCH_SERVER_DIR``; a server whose ``dir`` differs (a
        user's Redis, reached by running ``bench/child.py`` by hand with other
        URLs) is never flushed.
        """
        expected = self.env.get("BENCH_SERVER_DIR")
        for client in filter(None, (self.broker, self.counter, self.bullmq)):
            actual = client.config_get("dir").get("dir", "")
            if not expected or os.path.realpath(actual) != os.path.realpath(expected):
                raise RuntimeError(f"refusing to flush the Redis at {client}: it is not the "
                                   "benchmark's own server (BENCH_SERVER_DIR)")

    def reset(self) -> None:
        """Empty the broker and the counters, delete the benchmark's job rows, drop connections."""
        from django.db import connections

        from tasks.models import Job, JobLog

        self.ensure_own_server()
        self.broker.flushdb()
        self.counter.flushdb()
        if self.bullmq is not None:
            self.bullmq.flushdb()  # BullMQ's database only
        bench_jobs = Job.objects.filter(name__startswith="bench-")
        JobLog.objects.filter(job__in=bench_jobs)._raw_delete(JobLog.objects.db)
        bench_jobs._raw_delete(Job.objects.db)
        ensure_order_table()
        with connections["default"].cursor() as cursor:
            cursor.execute(f"DELETE FROM {ORDER_TABLE}")
        connections.close_all()

    def depth(self, system: str) -> int:
        if system == "bullmq":
            return bullmq.depth(self.bullmq)
        return queue_depth(self.broker, QUEUES[system])

    def expect_depth(self, system: str, n: int) -> None:
        depth = self.depth(system)
        if depth != n:
            raise RuntimeError(f"{system}: {depth} messages queued, expected {n}")

    def redis_cpu_s(self) -> float:
        info = self.broker.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def order(self, run: int) -> tuple[str, ...]:
        """The systems in the order run ``run`` measures them: alternating between runs."""
        return self.systems if run % 2 == 0 else self.systems[::-1]

    def side(self, system: str) -> ServiceSide | PlainSide | bullmq.BullMQSide:
        if system == "bullmq":  # one Node process for the whole child, kept warm
            if self._bullmq_side is None:
                log = self.tmp / f"bullmq-serve-{self.database}.log"
                self._bullmq_side = bullmq.BullMQSide(self.env, log)
            return self._bullmq_side
        return ServiceSide() if system == "service" else PlainSide()

    def shutdown(self) -> None:
        """End what the context started (BullMQ's enqueuing process)."""
        if self._bullmq_side is not None:
            self._bullmq_side.shutdown()
            self._bullmq_side = None


class ServiceSide:
    """Enqueue through the job API (``tasks.enqueue.api``): a row per job, published after commit."""

    system = "service"

    def __init__(self) -> None:
        from bench import service_app

        service_app.app.set_current()  # tasks.enqueue.publishing uses celery.current_app

    def one(self, task: str, data: dict, *, priority: int | None = None) -> None:
        """``add_job``; ``priority`` is a ``JobPriority`` (1 first)."""
        from tasks.enqueue.api import add_job

        add_job("analytics", f"bench-{task}", data, priority=priority)

    def one_in_transaction(self, task: str, data: dict) -> None:
        """The caller's row and ``add_job`` in one transaction; published at its commit."""
        from django.db import transaction

        from tasks.enqueue.api import add_job

        with transaction.atomic():
            write_order()
            add_job("analytics", f"bench-{task}", data)

    def bulk(
        self,
        task: str,
        items: list[dict],
        *,
        priority: int | None = None,
        delays: list[float] | None = None,
    ) -> None:
        """``add_bulk`` in batches of ``BATCH``; ``priority`` is a ``JobPriority`` (1 first)."""
        from tasks.enqueue.api import add_bulk

        name = f"bench-{task}"
        for start in range(0, len(items), BATCH):
            batch = []
            for i in range(start, min(start + BATCH, len(items))):
                job = {"queue": "analytics", "name": name, "data": items[i]}
                if priority is not None:
                    job["priority"] = priority
                if delays is not None:
                    job["delay"] = delays[i] * 1000  # seconds here, milliseconds in the job API
                batch.append(job)
            add_bulk(batch)

    def close(self) -> None:
        from django.db import connections

        connections.close_all()  # hold no SQLite connection while workers write


class PlainSide:
    """Plain Celery: ``.delay()``, or ``apply_async`` on one producer for batches."""

    system = "plain"

    def one(self, task: str, data: dict, *, priority: int | None = None) -> None:
        """``.delay()``; with a ``priority`` (``JobPriority``), ``apply_async`` with Redis's."""
        from bench import plain_app

        fn = getattr(plain_app, task)
        if priority is None:
            fn.delay(**data)
        else:
            fn.apply_async(kwargs=data, priority=priority - 1)  # Redis: 0 first

    def one_in_transaction(self, task: str, data: dict) -> None:
        """The caller's row, then ``.delay()`` at its commit (``transaction.on_commit``, as
        Celery's Django guide advises: a task published before the commit could run before
        the row exists, or for a row rolled back)."""
        from functools import partial

        from django.db import transaction

        from bench import plain_app

        with transaction.atomic():
            write_order()
            transaction.on_commit(partial(getattr(plain_app, task).delay, **data))

    def bulk(
        self,
        task: str,
        items: list[dict],
        *,
        priority: int | None = None,
        delays: list[float] | None = None,
    ) -> None:
        """Batches of ``BATCH`` on one pooled producer; ``priority`` as ``JobPriority``."""
        from bench import plain_app

        fn = getattr(plain_app, task)
        broker_priority = (priority if priority is not None else 3) - 1  # Redis: 0 first
        for start in range(0, len(items), BATCH):
            with plain_app.app.producer_or_acquire() as producer:
                for i in range(start, min(start + BATCH, len(items))):
                    fn.apply_async(
                        kwargs=items[i], priority=broker_priority, producer=producer,
                        countdown=delays[i] if delays is not None else None,
                    )  # fmt: skip

    def close(self) -> None:
        pass


def timed(fn, *args, **kwargs) -> float:
    """Seconds ``fn(*args, **kwargs)`` took."""
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started
