"""What the soak's jobs are meant to do, and how much chaos a run of a given size gets.

Shared by the producers (which choose a plan per job and write it to their
log) and the checker (which judges each job by it), so the two cannot
disagree about what "as planned" means.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

#: Plan -> share of the jobs. ``cancel-waiting`` jobs are cancelled right after
#: their commit, ``cancel-active`` ones once the producer sees them active; both
#: hold their worker a while, checking ``job.is_cancelled()``, so few of them.
PLANS: dict[str, float] = {
    "ok": 0.70,
    "flaky": 0.14,
    "fail": 0.05,
    "permanent": 0.05,
    "cancel-waiting": 0.04,
    "cancel-active": 0.02,
}

QUEUES = ("email", "notifications", "data-processing", "analytics")

#: Attempts and backoff of every soak job: a failing job ends after 3 attempts,
#: 300 ms and 600 ms apart (exponential), short enough for the drain limit.
ATTEMPTS = 3
BACKOFF = {"type": "exponential", "delay": 300}

#: A delayed job waits 0-30 s (issue 18); this share of the jobs is delayed.
MAX_DELAY_MS = 30_000
DELAYED_SHARE = 0.15

#: How long a cancellable job holds its worker unless cancelled first.
CANCEL_HOLD_MS = 1_500

#: The size ``pytest --soak`` (CI) means; the issue's minimum counts apply from here.
CI_SIZE = 20_000


@dataclass(frozen=True)
class JobPlan:
    """One job as a producer adds it; ``data`` is the processor's keyword arguments."""

    queue: str
    plan: str
    data: dict
    delay_ms: int


def choose(rng: random.Random, work_ms: int, left_ms: float = MAX_DELAY_MS) -> JobPlan:
    """A random job: its queue, plan, data and delay.

    A delay is 0-30 s, but no longer than the producer has left to run (2 s at
    least): a job due after the chaos ends is not a backlog the drain limit
    should wait for, and the default run stays short.
    """
    plan = rng.choices(list(PLANS), weights=list(PLANS.values()))[0]
    data: dict = {"plan": plan, "work_ms": work_ms}
    if plan == "flaky":
        data["fails"] = rng.choice((1, 2))
    if plan.startswith("cancel"):
        data["hold_ms"] = CANCEL_HOLD_MS
    delayed = plan != "cancel-active" and rng.random() < DELAYED_SHARE
    return JobPlan(queue=rng.choice(QUEUES), plan=plan, data=data,
                   delay_ms=rng.randint(0, int(min(MAX_DELAY_MS, max(2000, left_ms))))
                   if delayed else 0)


@dataclass(frozen=True)
class ChaosTargets:
    """The least of each fault a run must inflict (issue 18's counts at the CI size and
    above, scaled down with a floor for the small default run)."""

    worker_kills: int
    promoter_kills: int
    beat_kills: int
    broker_kills: int
    db_terminations: int
    pauses: int

    @classmethod
    def for_size(cls, size: int) -> ChaosTargets:
        scale = min(1.0, size / CI_SIZE)

        def at_least(full: int, floor: int) -> int:
            return max(floor, math.ceil(full * scale))

        return cls(worker_kills=at_least(100, 6), promoter_kills=at_least(10, 2),
                   beat_kills=at_least(10, 2), broker_kills=at_least(5, 1),
                   db_terminations=at_least(5, 1), pauses=at_least(5, 1))


def chaos_seconds(size: int) -> float:
    """How long the producers spread their enqueues over (the chaos lasts at least that).

    About 70 jobs a second, what two 2-process workers keep up with on the
    2-core VM (producers, promoter and beat on the same cores) while being
    killed; 25 s at least so a small run still sees every kind of fault.
    """
    return max(25.0, size / 70)
