"""Soak: many jobs with planned failures while a chaos loop kills workers at random.

The checker looks at every committed job id: lost (not finished), duplicate
side effects (the idempotency record failed), unexpected outcomes. The
default run does 400 jobs; ``pytest --soak`` (run by .ci/run) does 20,000.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import psutil
import pytest
from django.db.models import Count

from tasks.models import Job
from tasks.queues import add_bulk
from tests import processes
from tests.integration.helpers import shared_worker_paused
from tests.testapp.models import Effect, Execution
from tests.testapp.processors import outcome_of


def _chaos_kill(worker: processes.ServiceProcess, rng: random.Random) -> str:
    """Kill the main process or one pool child, at random."""
    try:
        children = psutil.Process(worker.pid).children()
    except psutil.NoSuchProcess:
        return "gone"
    if children and rng.random() < 0.7:
        victim = rng.choice(children)
        victim.send_signal(signal.SIGKILL)
        return "child"
    worker.kill_group()
    return "main"


def check(ids: list[str], numbers: dict[str, int]) -> dict[str, int]:
    states = dict(Job.objects.filter(pk__in=ids).values_list("id", "state"))
    effects = Counter(dict(Effect.objects.values("job_id").annotate(n=Count("id"))
                           .values_list("job_id", "n")))
    report = Counter()
    for job_id in ids:
        state = states.get(job_id)
        expected = "failed" if outcome_of(numbers[job_id]) == "fail" else "completed"
        if state not in ("completed", "failed"):
            report["lost"] += 1
        elif state != expected:
            report["unexpected"] += 1
        if effects.get(job_id, 0) > 1:
            report["duplicate_effects"] += 1
        if state == "completed" and effects.get(job_id, 0) == 0:
            report["missing_effects"] += 1
    report["executions"] = Execution.objects.filter(key__startswith="soak").count()
    return dict(report)


@pytest.mark.timeout(3600)
def test_soak_under_chaos_loses_nothing_and_duplicates_no_effect(service, live_broker, tmp_path,
                                                                  soak_size):
    rng = random.Random(20261128)
    # Long enough jobs that the chaos loop (a kill every 1-3 s) lands several
    # kills before a small run is done: 400 jobs x 100 ms on 4 processes is
    # ~10 s of work (enqueue and drain got fast enough that 10 ms jobs could
    # all be done by the second kill). The 20,000-job soak keeps 10 ms.
    work_ms = max(10, 40_000 // soak_size)
    with shared_worker_paused("data-processing"):
        ids: list[str] = []
        numbers: dict[str, int] = {}
        for start in range(0, soak_size, 1000):
            batch = range(start, min(start + 1000, soak_size))
            new = add_bulk({"queue": "data-processing", "name": "soak", "data": {"n": n, "work_ms": work_ms},
                            "attempts": 3, "backoff": {"type": "fixed", "delay": 200}}
                           for n in batch)
            ids += new
            numbers.update(zip(new, batch, strict=True))
        workers = {name: processes.worker(live_broker, tmp_path, name, queues="data-processing",
                                          concurrency=2).start() for name in ("chaos1", "chaos2")}
        kills = Counter()
        chaos_until = time.monotonic() + max(20, soak_size / 100)

        def finished() -> int:
            return Job.objects.filter(name="soak", state__in=("completed", "failed")).count()

        try:
            # Chaos: kill a worker process every 1-3 s while jobs remain.
            while time.monotonic() < chaos_until and finished() < len(ids):
                time.sleep(rng.uniform(1.0, 3.0))
                name = rng.choice(sorted(workers))
                kills[_chaos_kill(workers[name], rng)] += 1
                if workers[name].process.poll() is not None:
                    workers[name] = processes.worker(live_broker, tmp_path, name,
                                                     queues="data-processing", concurrency=2).start()
            # Calm: every worker up; whatever chaos interrupted must now finish.
            for name, worker in list(workers.items()):
                if worker.process.poll() is not None:
                    workers[name] = processes.worker(live_broker, tmp_path, name,
                                                     queues="data-processing", concurrency=2).start()
            # ... as long as they keep finishing: stop after 60 s without progress.
            last, last_progress = finished(), time.monotonic()
            while last < len(ids) and time.monotonic() - last_progress < 60:
                time.sleep(1.0)
                now_finished = finished()
                if now_finished > last:
                    last, last_progress = now_finished, time.monotonic()
        finally:
            for worker in workers.values():
                worker.stop()
    report = check(ids, numbers)
    print(f"\nsoak: {len(ids)} jobs, kills {dict(kills)}, checker {report}")
    unfinished = Job.objects.filter(pk__in=ids).exclude(state__in=("completed", "failed"))
    for job in unfinished[:10]:
        print("  unfinished:", job.id, job.state, job.worker, job.lost_count, job.published_at)
    assert report.get("lost", 0) == 0, report
    assert report.get("duplicate_effects", 0) == 0, report
    assert report.get("unexpected", 0) == 0, report
    assert report.get("missing_effects", 0) == 0, report
    assert sum(kills.values()) >= 2
