"""One exception per kind of bad input, each naming the bad value.

All derive from ``JobInputError`` (a ``ValueError``) so callers can catch
them together; the API turns them into 400 responses. When one is raised
nothing has been written or published.
"""

from __future__ import annotations

import builtins
from typing import Any


class JobInputError(ValueError):
    """Base class: the job was rejected at the call site; nothing was enqueued."""


class UnknownQueueError(JobInputError):
    def __init__(self, queue: Any, known: list[str]) -> None:
        super().__init__(f"queue {queue!r} is not one of: {', '.join(known)}")


class UnknownJobNameError(JobInputError):
    def __init__(self, queue: str, name: Any, known: list[str]) -> None:
        super().__init__(
            f"job name {name!r} is not registered on queue {queue!r}; "
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


class InvalidDelayError(JobInputError):
    def __init__(self, delay: Any) -> None:
        super().__init__(
            f"delay {delay!r} is invalid: give seconds >= 0 or a non-negative timedelta"
        )


class InvalidPriorityError(JobInputError):
    def __init__(self, priority: Any) -> None:
        super().__init__(
            f"priority {priority!r} is outside 1 (CRITICAL) .. 5 (BACKGROUND)"
        )


class InvalidAttemptsError(JobInputError):
    def __init__(self, attempts: Any) -> None:
        super().__init__(f"attempts {attempts!r} is invalid: give a whole number >= 1")


class InvalidBackoffError(JobInputError):
    def __init__(self, backoff: Any, reason: str) -> None:
        super().__init__(f"backoff {backoff!r} is invalid: {reason}")


class InvalidCronError(JobInputError):
    def __init__(self, expression: Any, reason: str) -> None:
        super().__init__(f"cron expression {expression!r} is invalid: {reason}")


class InvalidRepeatError(JobInputError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"repeat options are invalid: {detail}")


class InvalidJobIdError(JobInputError):
    def __init__(self, job_id: Any) -> None:
        super().__init__(
            f"job id {job_id!r} is invalid: give a non-empty string of at most 255 chars"
        )


class JobNotFoundError(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")


class JobStateError(RuntimeError):
    """An action does not apply to the job's current state (e.g. retry a completed job)."""

    def __init__(self, job_id: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} job {job_id!r}: it is {state}")


class TransientJobError(Exception):
    """Raise from a processor for a failure that may pass (rate limit, outage): retried."""


class PermanentJobError(Exception):
    """Raise from a processor for a failure retrying cannot fix: failed at once."""


class JobCancelled(Exception):
    """Raise from a processor that saw ``job.is_cancelled()``: the job stops, marked cancelled."""


class InvalidArgumentsError(JobInputError):
    def __init__(self, task: str, detail: str) -> None:
        super().__init__(f"arguments do not fit job {task!r}: {detail}")


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
