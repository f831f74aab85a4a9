"""One exception per kind of bad input, each naming the bad value.

All derive from ``JobInputError`` (a ``ValueError``) so callers can catch
them together; the API turns them into 400 responses. When one is raised
nothing has been written or published.
"""

from __future__ import annotations

import builtins
from typing import Any

from tasks.jobs.limits import (
    MAX_ATTEMPTS,
    MAX_CLEAN_AGE,
    MAX_DATA_DEPTH,
    MAX_DELAY_S,
    MAX_JOB_ID_CHARS,
)
from tasks.jobs.text import short_repr as _r


class JobInputError(ValueError):
    """Base class: the job was rejected at the call site; nothing was enqueued."""


class UnknownQueueError(JobInputError):
    def __init__(self, queue: Any, known: list[str]) -> None:
        super().__init__(f"queue {_r(queue)} is not one of: {', '.join(known)}")


class UnknownJobNameError(JobInputError):
    def __init__(self, queue: str, name: Any, known: list[str]) -> None:
        super().__init__(
            f"job name {_r(name)} is not registered on queue {_r(queue)}; "
            f"known: {', '.join(known) or 'none'}"
        )


class PayloadNotJSONError(JobInputError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"job data is not JSON-serialisable: {detail}")


class PayloadTooLargeError(JobInputError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"job data is {size} bytes, over the {limit}-byte limit; "
            "store a reference (an id or a path), not the file"
        )


class PayloadTooDeepError(JobInputError):
    def __init__(self, what: str = "job data") -> None:
        super().__init__(
            f"{what} nests objects or arrays deeper than {MAX_DATA_DEPTH} levels; flatten it"
        )


class InvalidDelayError(JobInputError):
    def __init__(self, delay: Any) -> None:
        super().__init__(
            f"delay {_r(delay)} is invalid: give milliseconds from 0 to {MAX_DELAY_S * 1000} "
            "(one year; a larger number is more likely seconds than a plan), or a timedelta "
            "within that"
        )


class InvalidPriorityError(JobInputError):
    def __init__(self, priority: Any) -> None:
        super().__init__(
            f"priority {_r(priority)} is outside 1 (CRITICAL) .. 5 (BACKGROUND)"
        )


class InvalidAttemptsError(JobInputError):
    def __init__(self, attempts: Any) -> None:
        super().__init__(
            f"attempts {_r(attempts)} is invalid: give a whole number from 1 to {MAX_ATTEMPTS}"
        )


class InvalidBackoffError(JobInputError):
    def __init__(self, backoff: Any, reason: str) -> None:
        super().__init__(f"backoff {_r(backoff)} is invalid: {reason}")


class InvalidCronError(JobInputError):
    def __init__(self, expression: Any, reason: str) -> None:
        super().__init__(f"cron expression {_r(expression)} is invalid: {reason}")


class InvalidKeepError(JobInputError):
    def __init__(self, option: str, value: Any) -> None:
        super().__init__(
            f"{option} {_r(value)} is invalid: give True, False, a count, a timedelta, or "
            '{"age": milliseconds or timedelta, "count": n}'
        )


class InvalidRateError(JobInputError):
    def __init__(self, rate: Any) -> None:
        super().__init__(f"rate limit {_r(rate)} is invalid: give '<jobs>/<s|min|h>', "
                         "e.g. '100/min', jobs from 1 to 1000000")


class RateLimited(Exception):
    """Raise from a processor when a provider says "slow down" (HTTP 429): BullMQ's rateLimit.

    The job goes back to waiting for ``delay_ms`` without using an attempt, and
    the whole queue is held that long on every worker.
    """

    def __init__(self, delay_ms: int = 60_000, reason: str = "") -> None:
        self.delay_ms = max(int(delay_ms), 1)
        super().__init__(reason or f"rate limited for {self.delay_ms} ms")


class InvalidFlowError(JobInputError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"flow is invalid: {detail}")


class ChildFailedError(Exception):
    """A flow's parent did not run: one of its children failed (its ``on_failure`` is ``fail``)."""


class InvalidOptionError(JobInputError):
    """A job option with a value it cannot take (``lifo="yes"``), naming both."""

    def __init__(self, option: str, value: Any, reason: str) -> None:
        super().__init__(f"{option} {_r(value)} is invalid: {reason}")


class InvalidTimeoutError(InvalidOptionError):
    """A ``timeout``/``soft_timeout`` out of bounds, or a soft one not below the hard one."""


class InvalidWindowError(InvalidOptionError):
    """A ``unique_for``/``debounce`` window or ``unique_key`` that cannot be honoured."""


class UnsupportedOptionError(JobInputError):
    """A Celery option the service cannot honour: refused by name, never dropped."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"option {option!r} is not supported: {reason}")


class InvalidRepeatError(JobInputError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"repeat options are invalid: {detail}")


class InvalidJobIdError(JobInputError):
    def __init__(self, job_id: Any) -> None:
        super().__init__(
            f"job id {_r(job_id)} is invalid: give 1 to {MAX_JOB_ID_CHARS} printable characters "
            "without '/' (no control characters, NUL or line breaks; not '.' or '..')"
        )


class InvalidCleanAgeError(JobInputError):
    def __init__(self, age: Any) -> None:
        super().__init__(
            f"age {_r(age)} is invalid: give a timedelta or milliseconds from 0 to "
            f"{MAX_CLEAN_AGE.days} days"
        )


class InvalidCleanStateError(JobInputError):
    def __init__(self, state: Any, cleanable: list[str]) -> None:
        super().__init__(f"state {_r(state)} cannot be cleaned; one of {', '.join(cleanable)}")


class WebhookNotAllowedError(JobInputError):
    """A webhook URL whose host is not in ``NOTIFY_WEBHOOK_HOSTS`` (empty: webhooks are off)."""

    def __init__(self, url: Any, reason: str) -> None:
        super().__init__(f"webhook url {_r(url)} is refused: {reason}")


class InvalidRequestError(JobInputError):
    """An API request body of the wrong shape (not JSON, not an object, unknown options)."""


class JobNotAllowedError(JobInputError):
    """A job the HTTP API may not enqueue (``JOB_API_ALLOWED``): the API answers 403."""

    def __init__(self, task: str, allowed: list[str]) -> None:
        super().__init__(
            f"job {_r(task)} cannot be enqueued through the API; allowed: "
            f"{', '.join(allowed) or 'none'} (setting JOB_API_ALLOWED)"
        )


class JobNotFoundError(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {_r(job_id)}")


class JobStateError(RuntimeError):
    """An action does not apply to the job's current state (e.g. retry a completed job)."""

    def __init__(self, job_id: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} job {_r(job_id)}: it is {state}")


class TransientJobError(Exception):
    """Raise from a processor for a failure that may pass (rate limit, outage): retried."""


class PermanentJobError(Exception):
    """Raise from a processor for a failure retrying cannot fix: failed at once."""


class DirectCallRefused(PermanentJobError, RuntimeError):
    """A job task called as a plain function inside a worker: jobs run only from their rows.

    Permanent: the calling job fails at once, as retrying would call it again.
    """

    def __init__(self, task: str) -> None:
        super().__init__(
            f"job task {task!r} was called directly inside a worker; enqueue it "
            "(add_job, .delay()) so it runs from its record"
        )


class JobTimeoutError(TimeoutError):
    """A job ran past its time limit: recorded as the attempt's error, retried by its backoff.

    The soft limit raises it inside the processor (from Celery's
    ``SoftTimeLimitExceeded``); at the hard limit the pool process is stopped
    and the worker records it. One argument, the message, so the result
    backend can rebuild it from a stored error.
    """


class JobCancelled(Exception):
    """Raise from a processor that saw ``job.is_cancelled()``: the job stops, marked cancelled."""


class InvalidArgumentsError(JobInputError):
    def __init__(self, task: str, detail: str) -> None:
        super().__init__(f"arguments do not fit job {_r(task)}: {detail}")


def error_class_path(entry: dict) -> str:
    """``module.Class`` of the exception an attempt's error entry records.

    Taken from the entry's ``exception`` field when it has one, else from the
    traceback's last line (``pkg.mod.Error: …``), else a builtin of that name,
    else ``builtins.Exception``. A lost worker is billiard's ``WorkerLostError``.
    """
    if entry.get("exception"):
        return str(entry["exception"])
    error = str(entry.get("error", ""))
    name = error.split(":", 1)[0].strip() or "Exception"
    if name == "WorkerLost" or error.startswith("worker lost"):
        return "billiard.exceptions.WorkerLostError"
    for line in reversed(str(entry.get("traceback", "")).splitlines()):
        head = line.split(":", 1)[0].strip()
        if head.endswith(f".{name}") and " " not in head:
            return head
    return f"builtins.{name}" if isinstance(getattr(builtins, name, None), type) else \
        "builtins.Exception"
