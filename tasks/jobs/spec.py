"""Validated job specifications: everything is checked before anything is written."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings

from tasks.jobs.backoff import parse_backoff
from tasks.jobs.config import QUEUE_PRESETS, JobPriority, QueueName
from tasks.jobs.errors import (
    InvalidAttemptsError,
    InvalidDelayError,
    InvalidJobIdError,
    InvalidPriorityError,
    PayloadNotJSONError,
    PayloadTooLargeError,
)


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


def parse_delay(delay: Any) -> float:
    """Seconds (int/float) or a timedelta; None means no delay."""
    if delay is None:
        return 0.0
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise InvalidDelayError(delay)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
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
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidAttemptsError(attempts)
    return attempts


def parse_data(data: Any) -> dict:
    """Data must be a JSON object within ``JOB_MAX_PAYLOAD_BYTES``."""
    return encode_data(data)[0]


def encode_data(data: Any) -> tuple[dict, str]:
    """``parse_data`` plus the JSON it measured, so nothing encodes the payload twice."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PayloadNotJSONError(f"expected an object (dict) of keyword arguments, got {type(data).__name__}")
    try:
        encoded = json.dumps(data, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PayloadNotJSONError(str(exc)) from None
    limit = settings.JOB_MAX_PAYLOAD_BYTES
    size = len(encoded) if encoded.isascii() else len(encoded.encode())
    if size > limit:
        raise PayloadTooLargeError(size, limit)
    return data, encoded


def parse_job_id(job_id: Any) -> str | None:
    if job_id is None:
        return None
    if not isinstance(job_id, str) or not job_id or len(job_id) > 255:
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
) -> JobSpec:
    """Validate every option against the queue's preset (queue and name already checked).

    ``data_json`` is ``encode_data``'s JSON when the caller already checked ``data``.
    """
    preset = QUEUE_PRESETS[queue]
    if data_json is None:
        data, data_json = encode_data(data)
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
    )
