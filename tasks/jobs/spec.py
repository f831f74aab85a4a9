"""Validated job specifications: everything is checked before anything is written."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from tasks.jobs.backoff import parse_backoff
from tasks.jobs.config import QUEUE_PRESETS, JobPriority, QueueName
from tasks.jobs.errors import (
    InvalidAttemptsError,
    InvalidDelayError,
    InvalidJobIdError,
    InvalidKeepError,
    InvalidOptionError,
    InvalidPriorityError,
    PayloadNotJSONError,
    PayloadTooDeepError,
    PayloadTooLargeError,
)
from tasks.jobs.limits import (
    MAX_ATTEMPTS,
    MAX_DATA_DEPTH,
    MAX_DELAY_MS,
    MAX_DELAY_S,
    MAX_JOB_ID_CHARS,
)
from tasks.jobs.timeouts import parse_limits
from tasks.jobs.windows import DEBOUNCE, Window, parse_window


@dataclass(frozen=True)
class Extras:
    """What a plain job leaves at its defaults: its place in a Celery canvas, its own
    retention, its own time limits and LIFO.

    ``canvas_json``: the signatures to apply after it (the rest of its chain,
    ``link``, ``link_error``) as JSON; ``expires_at``: Celery's ``expires``;
    ``keep_json``: its ``remove_on_complete``/``remove_on_fail`` (``parse_keep``);
    ``timeout_ms``/``soft_timeout_ms``: ``tasks.jobs.timeouts``; ``lifo``: taken
    before the other waiting jobs of its priority.
    """

    parent_id: str = ""
    group_id: str = ""
    group_index: int | None = None
    canvas_json: str | None = None
    expires_at: datetime | None = None
    keep_json: str | None = None
    #: A flow's parent: written ``waiting-children``, published when its children complete.
    waits_for_children: bool = False
    timeout_ms: int | None = None
    soft_timeout_ms: int | None = None
    lifo: bool = False


def parse_keep(value: Any, option: str) -> dict | None:
    """BullMQ's ``remove_on_complete``/``remove_on_fail`` as stored on the row.

    ``True``: removed at the next retention pass; ``False``: kept until removed
    by hand; a count ``n``: the newest ``n`` of its queue and job name kept; a
    timedelta or ``{"age": ms or timedelta, "count": n}``: kept that long and/or
    among that many. None: the queue's preset decides.
    """
    if value is None:
        return None
    if value is True or value is False:
        return {"remove": value}
    if isinstance(value, int):
        return {"count": _keep_count(value, option)}
    if isinstance(value, timedelta):
        return {"age_s": _keep_age(value, option)}
    if isinstance(value, dict) and value and set(value) <= {"age", "count"}:
        keep = {}
        if "age" in value:
            age = value["age"]
            if isinstance(age, (int, float)) and not isinstance(age, bool) and math.isfinite(age):
                age = timedelta(milliseconds=age) if 0 <= age <= MAX_DELAY_MS else None
            keep["age_s"] = _keep_age(age, option)
        if "count" in value:
            keep["count"] = _keep_count(value["count"], option)
        return keep
    raise InvalidKeepError(option, value)


def _keep_count(count: Any, option: str) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**9:
        raise InvalidKeepError(option, count)
    return count


def _keep_age(age: Any, option: str) -> float:
    if not isinstance(age, timedelta) or not timedelta(0) <= age <= timedelta(days=3650):
        raise InvalidKeepError(option, age)
    return age.total_seconds()


@dataclass(frozen=True)
class JobSpec:
    """An immutable, validated request to run one job."""

    queue: QueueName
    name: str
    data: dict
    priority: int
    delay_s: float
    attempts: int
    backoff: dict
    job_id: str | None = None
    #: ``data`` as JSON, encoded once by the size check and reused by the INSERT.
    data_json: str | None = None
    #: Its place in a Celery canvas (``tasks.enqueue.options``); None for a plain job.
    extras: Extras | None = None
    #: Its ``unique_for``/``debounce`` window (``tasks.jobs.windows``); None for most jobs.
    window: Window | None = None


def parse_delay(delay: Any) -> float:
    """Seconds of a delay given in milliseconds (as in BullMQ) or as a timedelta.

    From 0 to a year (``MAX_DELAY_MS``); None means no delay.
    """
    if delay is None:
        return 0.0
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int) and not isinstance(delay, bool):
        if not 0 <= delay <= MAX_DELAY_MS:  # before ``float()``, which overflows past 1e308
            raise InvalidDelayError(delay)
        seconds = delay / 1000
    elif isinstance(delay, float):
        if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY_MS:
            raise InvalidDelayError(delay)
        seconds = delay / 1000
    else:
        raise InvalidDelayError(delay)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_S:
        raise InvalidDelayError(delay)
    return seconds


def parse_priority(priority: Any) -> int:
    if priority is None:
        return int(JobPriority.NORMAL)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPriorityError(priority)
    if not 1 <= priority <= 5:
        raise InvalidPriorityError(priority)
    return int(priority)


def parse_attempts(attempts: Any, default: int) -> int:
    if attempts is None:
        return default
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise InvalidAttemptsError(attempts)
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise InvalidAttemptsError(attempts)
    return int(attempts)


def parse_data(data: Any) -> dict:
    """Data must be a JSON object within ``JOB_MAX_PAYLOAD_BYTES``."""
    return encode_data(data)[0]


def json_depth(value: Any, stop_after: int = MAX_DATA_DEPTH) -> int:
    """Deepest nesting of dicts and lists/tuples in ``value`` (a scalar is 0).

    Iterative, so a value nested 100,000 deep is measured without recursion;
    it stops counting once past ``stop_after``.
    """
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(value: Any, encoded: str | None = None, what: str = "job data") -> None:
    """``PayloadTooDeepError`` past ``MAX_DATA_DEPTH``.

    With the JSON text: fewer opening brackets than the limit (most payloads)
    cannot nest deeper, counted in C, so the walk runs only for the rest.
    """
    if encoded is not None and encoded.count("[") + encoded.count("{") <= MAX_DATA_DEPTH:
        return
    if json_depth(value) > MAX_DATA_DEPTH:
        raise PayloadTooDeepError(what)


def encode_data(data: Any) -> tuple[dict, str]:
    """``parse_data`` plus the JSON it measured, so nothing encodes the payload twice."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PayloadNotJSONError(f"expected an object (dict) of keyword arguments, got {type(data).__name__}")
    try:
        encoded = json.dumps(data, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise PayloadTooDeepError() from None
    except (TypeError, ValueError) as exc:
        raise PayloadNotJSONError(str(exc)) from None
    check_depth(data, encoded)
    limit = settings.JOB_MAX_PAYLOAD_BYTES
    size = len(encoded) if encoded.isascii() else len(encoded.encode())
    if size > limit:
        raise PayloadTooLargeError(size, limit)
    return data, encoded


def valid_job_id(job_id: Any) -> bool:
    """1–255 printable characters without '/', and not '.' or '..'.

    ``str.isprintable`` is False for NUL, newlines and every other control or
    format character (bidi overrides included), lone surrogates and
    separators other than the space: such an id forges log lines, fails to
    encode as UTF-8, or reads as something else on a page. '/' and the dot
    segments would make the id's page URL resolve to another route.
    """
    return (isinstance(job_id, str) and 0 < len(job_id) <= MAX_JOB_ID_CHARS
            and job_id.isprintable() and "/" not in job_id and job_id not in (".", ".."))


def parse_job_id(job_id: Any) -> str | None:
    if job_id is None:
        return None
    if not valid_job_id(job_id):
        raise InvalidJobIdError(job_id)
    return job_id


def build_spec(
    queue: QueueName,
    name: str,
    data: Any,
    *,
    priority: Any = None,
    delay: Any = None,
    attempts: Any = None,
    backoff: Any = None,
    job_id: Any = None,
    data_json: str | None = None,
    extras: Extras | None = None,
    remove_on_complete: Any = None,
    remove_on_fail: Any = None,
    timeout: Any = None,
    soft_timeout: Any = None,
    lifo: Any = None,
    unique_for: Any = None,
    unique_key: Any = None,
    debounce: Any = None,
    task_time_limit_s: float | None = None,
) -> JobSpec:
    """Validate every option against the queue's preset (queue and name already checked).

    ``data_json`` is ``encode_data``'s JSON when the caller already checked ``data``;
    ``task_time_limit_s`` the job's hard limit without a ``timeout`` of its own.
    """
    preset = QUEUE_PRESETS[queue]
    if data_json is None:
        data, data_json = encode_data(data)
    keep = {state: rule for state, rule in (
        ("completed", parse_keep(remove_on_complete, "remove_on_complete")),
        ("failed", parse_keep(remove_on_fail, "remove_on_fail"))) if rule is not None}
    if keep:
        extras = dataclasses.replace(extras or Extras(), keep_json=json.dumps(keep))
    hard_ms, soft_ms = parse_limits(timeout, soft_timeout, task_time_limit_s)
    if lifo not in (None, True, False):
        raise InvalidOptionError("lifo", lifo, "give True or False")
    if hard_ms is not None or soft_ms is not None or lifo:
        extras = dataclasses.replace(extras or Extras(), timeout_ms=hard_ms,
                                     soft_timeout_ms=soft_ms, lifo=bool(lifo))
    window = parse_window(unique_for, debounce, unique_key, delay=delay, job_id=job_id)
    if window is not None and window.kind == DEBOUNCE:
        delay = timedelta(seconds=window.seconds)  # a pending job: a delayed row
    return JobSpec(
        queue=queue,
        name=name,
        data=data,
        priority=parse_priority(priority),
        delay_s=parse_delay(delay),
        attempts=parse_attempts(attempts, preset.attempts),
        backoff=parse_backoff(backoff, preset.backoff),
        job_id=parse_job_id(job_id),
        data_json=data_json,
        extras=extras,
        window=window,
    )
