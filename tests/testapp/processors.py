"""Processors used only by tests, on the real queues."""

from __future__ import annotations

import os
import time

from tasks.jobs.config import QueueName
from tasks.jobs.errors import PermanentJobError, TransientJobError
from tasks.worker.job import JobContext
from tasks.worker.registry import processor
from tests.testapp.models import Execution


def _record(job: JobContext, key: str) -> None:
    Execution.objects.create(key=key, job_id=job.id, attempt=job.attempts_made, worker_pid=os.getpid())


@processor(QueueName.DATA_PROCESSING, "record")
def record(job: JobContext, key: str, sleep: float = 0.0) -> dict:
    """Writes one ledger row per execution (after an optional sleep)."""
    if sleep:
        time.sleep(sleep)
    _record(job, key)
    return {"key": key}


@processor(QueueName.ANALYTICS, "record-analytics")
def record_analytics(job: JobContext, key: str, sleep: float = 0.0) -> dict:
    if sleep:
        time.sleep(sleep)
    _record(job, key)
    return {"key": key}


@processor(QueueName.DATA_PROCESSING, "flaky")
def flaky(job: JobContext, key: str, fail_times: int = 1, error: str = "transient") -> str:
    """Fails its first ``fail_times`` attempts with a transient (or a bug-like) error."""
    _record(job, key)
    if job.attempts_made <= fail_times:
        if error == "bug":
            raise KeyError(f"bug on attempt {job.attempts_made}")
        if error == "permanent":
            raise PermanentJobError(f"hopeless on attempt {job.attempts_made}")
        raise TransientJobError(f"transient failure on attempt {job.attempts_made}")
    return "ok"


@processor(QueueName.DATA_PROCESSING, "narrow-retries", retry_on=(ConnectionError,))
def narrow_retries(job: JobContext, key: str, error: str = "value") -> None:
    """Retries connection errors only: anything else fails at once."""
    _record(job, key)
    raise (ConnectionError if error == "connection" else ValueError)(f"{error} error")


def _always_fails_hook(job: JobContext, exc: BaseException) -> None:
    from tasks.services.notifications import store

    store(f"hook:{job.id}", None, f"hook saw {exc}", kind="test-hook")


@processor(QueueName.DATA_PROCESSING, "always-fails", failure_hook=_always_fails_hook)
def always_fails(job: JobContext, key: str) -> None:
    _record(job, key)
    raise ConnectionError("upstream unreachable")


@processor(QueueName.DATA_PROCESSING, "custom-backoff",
           backoff_strategy=lambda attempts_made: 300 * attempts_made)
def custom_backoff(job: JobContext, key: str, fail_times: int = 2) -> str:
    _record(job, key)
    if job.attempts_made <= fail_times:
        raise TimeoutError("slow upstream")
    return "ok"


@processor(QueueName.DATA_PROCESSING, "fails-first-runs")
def fails_first_runs(job: JobContext, key: str, fail_runs: int = 1) -> str:
    """Fails its first ``fail_runs`` executions, counted across manual retries."""
    _record(job, key)
    if Execution.objects.filter(key=key).count() <= fail_runs:
        raise TransientJobError("not yet")
    return "ok"


@processor(QueueName.ANALYTICS, "suicide")
def suicide(job: JobContext, key: str) -> None:
    """Kills the process running it: a poison job."""
    _record(job, key)
    os.kill(os.getpid(), 9)


@processor(QueueName.ANALYTICS, "reports-progress")
def reports_progress(job: JobContext, key: str, steps: int = 4, pause: float = 0.4) -> str:
    """Reports progress in ``steps`` steps, ``pause`` seconds apart (live events)."""
    for step in range(1, steps + 1):
        time.sleep(pause)
        job.update_progress(step * 100 // steps)
    return key


@processor(QueueName.ANALYTICS, "slow")
def slow(job: JobContext, key: str, seconds: float = 3.0) -> dict:
    """Logs its pid, sleeps, then writes the ledger: a kill mid-sleep leaves no ledger row."""
    job.log(f"pid {os.getpid()}")
    time.sleep(seconds)
    _record(job, key)
    return {"key": key}


def outcome_of(n: int) -> str:
    """Soak job ``n``'s planned behaviour: mostly fine, some flaky, a few hopeless."""
    return "fail" if n % 10 == 0 else "flaky" if n % 5 == 0 else "ok"


@processor(QueueName.DATA_PROCESSING, "soak")
def soak(job: JobContext, n: int, work_ms: int = 2) -> str:
    """Counts every execution, then performs its effect once (idempotency record)."""
    from django.db import IntegrityError, transaction

    from tests.testapp.models import Effect, IdempotencyKey

    _record(job, f"soak{n}")
    time.sleep(work_ms / 1000)
    plan = outcome_of(n)
    if plan == "fail" or (plan == "flaky" and job.attempts_made < 2):
        raise TransientJobError(f"planned failure ({plan})")
    try:
        with transaction.atomic():
            IdempotencyKey.objects.create(job_id=job.id)
            Effect.objects.create(job_id=job.id)
    except IntegrityError:
        pass  # already done by an earlier, interrupted run
    return "done"


@processor(QueueName.DATA_PROCESSING, "unlucky-backoff",
           backoff_strategy=lambda attempts_made: float("nan"))
def unlucky_backoff(job: JobContext, key: str) -> None:
    """Fails with a transient error whose text holds NUL and a lone surrogate; its
    backoff strategy is broken: the failure path itself raises."""
    _record(job, key)
    raise TransientJobError("upstream said \x00 and \ud800")


@processor(QueueName.ANALYTICS, "calls-another-directly")
def calls_another_directly(job: JobContext, key: str) -> None:
    """Calls a job task as a plain function, as Celery's starmap would: refused in a worker."""
    record_analytics(key=key)


@processor(QueueName.DATA_PROCESSING, "add")
def add(job: JobContext, x: int, y: int = 0) -> int:
    """Canvas tests: a step that takes the previous step's result as its first argument."""
    _record(job, f"add:{x}+{y}")
    return x + y


@processor(QueueName.ANALYTICS, "total")
def total(job: JobContext, values: list) -> int:
    """A chord body: the parts' results, in order."""
    _record(job, f"total:{values}")
    return sum(values)


@processor(QueueName.ANALYTICS, "errback")
def errback(job: JobContext, failed_id: str) -> str:
    """A link_error callback: gets the failed job's id."""
    _record(job, f"errback:{failed_id}")
    return failed_id


@processor(QueueName.ANALYTICS, "sum-children")
def sum_children(job: JobContext, key: str) -> dict:
    """A flow parent: adds its children's results, and says which did not complete."""
    _record(job, key)
    values = job.children_values()
    return {"sum": sum(v for v in values.values() if isinstance(v, int)),
            "children": len(values), "failures": sorted(job.children_failures())}


@processor(QueueName.ANALYTICS, "told-to-slow-down")
def told_to_slow_down(job: JobContext, key: str, hold_ms: int = 2000) -> str:
    """The first run hears "429: slow down" from its provider; later runs go through."""
    from tasks.jobs.errors import RateLimited

    _record(job, key)
    if Execution.objects.filter(key=key).count() == 1:
        raise RateLimited(hold_ms, "provider answered 429")
    return "through"


@processor(QueueName.ANALYTICS, "batched", batch=10, soft_time_limit=4, time_limit=10)
def batched(job: JobContext, key: str, fail_times: int = 0, permanent: bool = False,
            sleep: float = 0.0, progress: bool = False, wait_cancel: float = 0.0,
            kill: bool = False) -> dict:
    """A batched processor (``tasks.worker.batch``): every per-job behaviour, by its data."""
    _record(job, key)
    if kill:
        os.kill(os.getpid(), 9)
    if progress:
        job.update_progress(50)
    if sleep:
        time.sleep(sleep)
    until = time.monotonic() + wait_cancel
    while time.monotonic() < until:
        if job.is_cancelled():
            from tasks.jobs.errors import JobCancelled

            raise JobCancelled()
        time.sleep(0.05)
    if permanent:
        raise PermanentJobError(f"hopeless on attempt {job.attempts_made}")
    if job.attempts_made <= fail_times:
        raise TransientJobError(f"transient failure on attempt {job.attempts_made}")
    return {"key": key, "pid": os.getpid()}


@processor(QueueName.ANALYTICS, "batched-stubborn", batch=5, soft_time_limit=30, time_limit=60)
def batched_stubborn(job: JobContext, key: str, seconds: float = 0.0) -> str:
    """Batched, and deaf to cancellation while it sleeps (forced cancellation)."""
    _record(job, key)
    time.sleep(seconds)
    return key
