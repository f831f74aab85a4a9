"""The full-strength soak (issue 18): jobs enqueued while everything that can die dies.

Three producer processes enqueue by every door (``add_job``, ``add_bulk``,
``.delay()`` in transactions of which some roll back; delayed, flaky,
failing, permanently failing and cancelled jobs) while three cron schedules
fire every second, and a seeded chaos loop kills worker main processes and
pool children, the promoter, beat and the private broker (restarted from
its AOF), terminates the database sessions on PostgreSQL, and pauses and
resumes queues through the operator API. Then every queue must drain within
60 s, and the checker (``soak.checker``) judges every committed id.

400 jobs in the default run; ``--soak`` (CI) 20,000; ``--soak-size N`` any
size (``make soak``: 100,000); ``--soak-seed`` replays a printed seed.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask

from tasks.jobs.states import FINISHED_STATES
from tasks.models import Job
from tasks.queues import QueueName, add_repeatable_job
from tests import processes
from tests.reliability.soak import checker
from tests.reliability.soak.chaos import Chaos, Service
from tests.reliability.soak.plan import ChaosTargets, chaos_seconds

PRODUCERS = 3
CRON = {"soak-cron-1": QueueName.ANALYTICS, "soak-cron-2": QueueName.NOTIFICATIONS,
        "soak-cron-3": QueueName.EMAIL}
#: Every queue must be empty this long after the chaos stops (issue 18).
DRAIN_LIMIT_S = 60.0


@contextmanager
def shared_service_stopped(service: dict) -> Iterator[None]:
    """The session's shared worker and promoter would take jobs out of the chaos's reach."""
    service["worker"].stop()
    service["promoter"].stop()
    try:
        yield
    finally:
        for proc in (service["worker"], service["promoter"]):
            seen = len(proc.log_text())  # its log is appended: wait for this start's line
            proc.start()
            processes.wait_for(lambda proc=proc, seen=seen: proc.ready_text in
                               proc.log_text()[seen:], 60, message=f"{proc.args[:4]} restart")


def _producers(broker_url: str, tmp: Path, out: Path, size: int, seed: int,
               seconds: float) -> list[subprocess.Popen]:
    procs = []
    for index in range(PRODUCERS):
        count = size // PRODUCERS + (1 if index < size % PRODUCERS else 0)
        log = open(tmp / f"producer-{index}.log", "wb")  # noqa: SIM115 (the child's)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.soak.producer", "--index", str(index),
             "--count", str(count), "--seed", str(seed), "--seconds", str(seconds),
             "--out", str(out)],
            env=processes.base_env(broker_url, tmp), cwd=processes.BASE_DIR, stdout=log,
            stderr=subprocess.STDOUT))
    return procs


def _waiting() -> int:
    return Job.objects.filter(state="waiting").count()


def _unfinished_by_queue() -> dict[str, int]:
    from django.db.models import Count

    return dict(Job.objects.exclude(state__in=FINISHED_STATES).values("queue")
                .annotate(n=Count("id")).order_by().values_list("queue", "n"))


@pytest.mark.soak
@pytest.mark.timeout(6 * 3600)
def test_full_strength_soak_loses_nothing_and_repeats_no_effect(service, live_broker, tmp_path,
                                                                  soak_size, soak_seed):
    began = time.monotonic()
    rng = random.Random(soak_seed)
    seconds = chaos_seconds(soak_size)
    targets = ChaosTargets.for_size(soak_size)
    broker, database = live_broker.split(":")[0], connection.vendor
    print(f"\nsoak: size={soak_size} seed={soak_seed} broker={broker} database={database} "
          f"producers={PRODUCERS} over {seconds:.0f}s, minimums {targets}")
    out = tmp_path / "producers"
    out.mkdir()
    soak = Service(live_broker, tmp_path)
    with shared_service_stopped(service):
        for name, queue in CRON.items():
            add_repeatable_job(queue, "chaos", {"plan": "ok", "work_ms": 1}, every=1000,
                               schedule_name=name)
        cron_since = time.time()
        soak.start()
        producers = _producers(live_broker, tmp_path, out, soak_size, soak_seed, seconds)
        chaos = Chaos(soak, rng, targets, seconds)
        chaos.producer_pids = [proc.pid for proc in producers]
        for reason in chaos.not_injected():
            print(f"soak: not injected: {reason}")
        give_up = time.monotonic() + 3 * seconds + 600
        backlog_ok = max(200, soak_size // 50)
        try:
            # Chaos while the producers add, until every minimum is met and the ready
            # backlog is small enough to drain in the limit once the faults stop.
            while time.monotonic() < give_up:
                time.sleep(rng.uniform(0.4, 1.2))
                chaos.tick()
                if (all(p.poll() is not None for p in producers) and chaos.targets_met()
                        and _waiting() <= backlog_ok):
                    break
            chaos_s = time.monotonic() - chaos.started
            chaos.calm()
            cron_until = time.time()
            soak.stop_beat()
            PeriodicTask.objects.filter(name__in=list(CRON)).update(enabled=False)
            calm_at = time.monotonic()
            left = _unfinished_by_queue()
            while sum(left.values()) and time.monotonic() - calm_at < DRAIN_LIMIT_S * 3:
                time.sleep(0.5)
                chaos.counts["exits"] += soak.revive()
                left = _unfinished_by_queue()
            drain_s = time.monotonic() - calm_at
        finally:
            for proc in producers:
                if proc.poll() is None:
                    proc.kill()
            soak.stop()
    for index, proc in enumerate(producers):
        assert proc.returncode == 0, (tmp_path / f"producer-{index}.log").read_text()[-3000:]
    report = checker.Report(seed=soak_seed, size=soak_size)
    checker.check_jobs(report, out)
    checker.check_rollbacks(report, out)
    checker.check_cron(report, CRON, cron_since, cron_until,
                       checker.beat_runs((tmp_path / "beat.log").read_text(errors="replace")))
    checker.count_executions(report)
    print(f"soak: {report.line()} | kills {chaos.summary()} | chaos {chaos_s:.0f}s "
          f"drain {drain_s:.1f}s total {time.monotonic() - began:.0f}s "
          f"broker={broker} database={database}")
    for example in report.examples:
        print("  ", example)
    assert not left, f"not drained {drain_s:.0f}s after the chaos: {left}"
    assert drain_s <= DRAIN_LIMIT_S, f"drained in {drain_s:.1f}s"
    assert not report.failures, report.failures
    assert report.figures["committed"] >= soak_size * 0.99, report.figures
    assert chaos.targets_met(), f"chaos below its minimums: {chaos.summary()} < {targets}"
