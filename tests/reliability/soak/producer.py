"""A soak producer process: ``python -m tests.reliability.soak.producer``.

Enqueues its share of the jobs at a steady pace while the chaos loop runs,
by every door the service has: ``add_job``, ``add_bulk``, and a processor's
``.delay()``, each inside a transaction of which some roll back. An id is
written to ``committed`` only after its transaction committed, to
``rolledback`` when the producer rolled it back, and to ``doubt`` when the
database connection died during the commit (the checker accepts either fate
for those, but never a half one). It also cancels the jobs planned for it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import IO


class _RollBack(Exception):
    """Raised inside a transaction the producer means to roll back."""


class Logs:
    """The producer's line-per-record files (line-buffered: a record is whole or absent)."""

    def __init__(self, out: Path, index: int) -> None:
        def open_(kind: str) -> IO[str]:
            return open(out / f"producer-{index}.{kind}.jsonl", "a", buffering=1)  # noqa: SIM115

        self.committed = open_("committed")
        self.rolledback = open_("rolledback")
        self.doubt = open_("doubt")
        self.cancels = open_("cancels")

    @staticmethod
    def write(file: IO[str], **record: object) -> None:
        file.write(json.dumps(record) + "\n")


def _db_errors() -> tuple[type[BaseException], ...]:
    from django.db import DatabaseError, InterfaceError

    return (DatabaseError, InterfaceError)


def _forget_connection() -> None:
    """A connection the chaos terminated: drop it, the next query opens a new one."""
    from django.db import connection

    try:
        connection.close()
    except Exception:  # closing a dead connection can itself fail; it is gone either way
        pass


class Producer:
    def __init__(self, index: int, count: int, seed: int, seconds: float, work_ms: int,
                 logs: Logs) -> None:
        self.index = index
        self.count = count
        self.rng = random.Random(seed * 1000 + index)
        self.seconds = seconds
        self.work_ms = work_ms
        self.logs = logs
        self.added = 0
        self.to_cancel: dict[str, float] = {}  # cancel-active ids -> when added
        self.started = time.monotonic()

    def run(self) -> None:
        self.started = started = time.monotonic()
        while self.added < self.count:
            due = started + self.seconds * self.added / self.count
            self.cancel_active_ones()
            if time.monotonic() < due:
                time.sleep(max(0.0, min(0.05, due - time.monotonic())))
                continue
            self.one_transaction()
        deadline = time.monotonic() + 60
        while self.to_cancel and time.monotonic() < deadline:
            self.cancel_active_ones()
            time.sleep(0.05)

    def one_transaction(self) -> None:
        """One transaction by one door, committed or (one in eight) rolled back."""
        from django.db import transaction

        from tests.reliability.soak import plan as plans

        door = self.rng.choices(("add_job", "add_bulk", "delay"), weights=(4, 3, 3))[0]
        size = 1 if door == "add_job" else self.rng.randint(2, 25)
        size = min(size, self.count - self.added)
        left_ms = (self.started + self.seconds - time.monotonic()) * 1000
        jobs = [plans.choose(self.rng, self.work_ms, left_ms) for _ in range(size)]
        roll_back = self.rng.random() < 0.125
        ids: list[str] = []
        body_done = False
        try:
            with transaction.atomic():
                ids = self._add(door, jobs)
                body_done = True
                if roll_back:
                    raise _RollBack
        except _RollBack:
            for job_id, job in zip(ids, jobs, strict=True):
                Logs.write(self.logs.rolledback, id=job_id, plan=job.plan, door=door)
            return  # these do not count: the same share is added again
        except _db_errors() as exc:
            _forget_connection()
            if body_done:  # the commit itself failed: it may or may not have happened
                for job_id, job in zip(ids, jobs, strict=True):
                    Logs.write(self.logs.doubt, id=job_id, plan=job.plan, door=door,
                               error=type(exc).__name__)
                self.added += len(jobs)
            time.sleep(0.1)
            return
        self.added += len(jobs)
        for job_id, job in zip(ids, jobs, strict=True):
            Logs.write(self.logs.committed, id=job_id, plan=job.plan, queue=job.queue,
                       door=door, delay_ms=job.delay_ms)
            if job.plan == "cancel-waiting":
                self.cancel(job_id, "waiting")
            elif job.plan == "cancel-active":
                self.to_cancel[job_id] = time.monotonic()

    def _add(self, door: str, jobs: list) -> list[str]:
        from tasks.enqueue.task import get_task
        from tasks.queues import QueueName, add_bulk, add_job
        from tests.reliability.soak.plan import ATTEMPTS, BACKOFF

        options = {"attempts": ATTEMPTS, "backoff": BACKOFF}
        if door == "add_job":
            return [add_job(job.queue, "chaos", job.data, delay=job.delay_ms, **options)
                    for job in jobs]
        if door == "add_bulk":
            return add_bulk({"queue": job.queue, "name": "chaos", "data": job.data,
                             "delay": job.delay_ms, **options} for job in jobs)
        return [get_task(QueueName(job.queue), "chaos").apply_async(kwargs=job.data, delay=job.delay_ms,
                                                         **options).id for job in jobs]

    def cancel_active_ones(self) -> None:
        """Cancel each ``cancel-active`` job once it is active (after 20 s, whatever it is)."""
        from tasks.models import Job

        if not self.to_cancel:
            return
        try:
            states = dict(Job.objects.filter(pk__in=list(self.to_cancel))
                          .values_list("id", "state"))
        except _db_errors():
            _forget_connection()
            return
        for job_id, added in list(self.to_cancel.items()):
            if states.get(job_id) != "active" and time.monotonic() - added < 20:
                continue
            del self.to_cancel[job_id]
            self.cancel(job_id, states.get(job_id, "missing"))

    def cancel(self, job_id: str, seen: str) -> None:
        """Cancel through the operator API; log what it answered (or that it failed)."""
        from tasks.jobs.errors import JobStateError
        from tasks.operate.actions import cancel_job

        try:
            result = cancel_job(job_id, by=f"soak-producer-{self.index}")
        except JobStateError:
            result = "too-late"  # it had finished already
        except _db_errors() as exc:
            _forget_connection()
            result = f"error:{type(exc).__name__}"
        Logs.write(self.logs.cancels, id=job_id, seen=seen, result=result)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--work-ms", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    import django

    django.setup()
    out = Path(args.out)
    producer = Producer(args.index, args.count, args.seed, args.seconds, args.work_ms,
                        Logs(out, args.index))
    producer.run()
    (out / f"producer-{args.index}.done").write_text(f"{producer.added}\n")


if __name__ == "__main__":
    main()
