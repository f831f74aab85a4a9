"""Celery's ``apply_async`` options on a job: each one honoured, or refused by name.

A Django team brings its Celery habits; none of them may be accepted and then
ignored. Honoured: the job options (``priority``, ``delay``, ``attempts``,
``backoff``, ``timeout``, ``soft_timeout``, ``lifo``, ``unique_for``,
``unique_key``, ``debounce``), Celery's ``time_limit``/``soft_time_limit``
(seconds, as Celery defines them: the job's own limits, kept on its row),
Celery's ``countdown``/``eta`` (a delayed row), ``expires`` (the
job is cancelled instead of run after it), the canvas (``link``,
``link_error``, ``chain``, ``chord``, ``group_id``/``group_index``,
``parent_id``/``root_id``: kept on the row, applied on completion or failure,
``tasks.worker.canvas``). Understood with nothing to do: ``reply_to``,
``add_to_parent``, ``ignore_result`` (results are always on record),
``producer`` (the service publishes after commit on its own connection),
``queue``/``routing_key``/``exchange`` naming the job's own queue, and the
``headers`` Celery beat adds. Everything else raises ``UnsupportedOptionError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from kombu.utils.json import dumps

from tasks.jobs.errors import UnsupportedOptionError
from tasks.jobs.limits import MAX_DELAY_S
from tasks.jobs.spec import Extras

#: Options taken over as they are by ``build_spec``.
JOB_OPTIONS = ("priority", "delay", "attempts", "backoff", "timeout", "soft_timeout", "lifo",
               "unique_for", "unique_key", "debounce")
#: Celery's time limits (seconds) and the job option each one is.
CELERY_LIMITS = {"time_limit": "timeout", "soft_time_limit": "soft_timeout"}
#: Celery options with nothing left to do once a job is on record (see the module docstring).
UNDERSTOOD = frozenset({"reply_to", "add_to_parent", "ignore_result", "producer"})
#: Headers Celery itself adds (beat): kept out of the job, which needs none.
CELERY_HEADERS = frozenset({"periodic_task_name", "celery_beat_task"})
#: Celery's own names for the canvas options it passes between its primitives.
CANVAS = frozenset({"chain", "chord", "group_id", "group_index", "parent_id", "root_id"})


def job_options(task: Any, options: Mapping[str, Any], link: Any = None,
                link_error: Any = None, shadow: Any = None) -> dict[str, Any]:
    """``build_spec`` keyword arguments (but ``delay``) from Celery's ``apply_async`` options."""
    if shadow is not None:
        raise UnsupportedOptionError("shadow", "a job is named by its queue and job name")
    for key in options:
        if key in JOB_OPTIONS or key in UNDERSTOOD or key in CANVAS or key in CELERY_LIMITS \
                or key in ("countdown", "eta", "expires"):
            continue
        if key in ("queue", "routing_key", "exchange"):
            _own_queue(task, key, options[key])
        elif key == "headers":
            _celery_headers(options[key])
        else:
            raise UnsupportedOptionError(key, _WHY.get(key, "the service cannot honour it"))
    spec = {key: options.get(key) for key in JOB_OPTIONS if key != "delay"}
    for celery_key, ours in CELERY_LIMITS.items():
        if options.get(celery_key) is not None:
            if options.get(ours) is not None:
                raise UnsupportedOptionError(celery_key, f"give {ours} (ms) or {celery_key} "
                                                         "(seconds), not both")
            spec[ours] = _seconds(options[celery_key], celery_key)
    extras = _extras(options, link, link_error)
    if extras is not None:
        spec["extras"] = extras
    return spec


_WHY = {
    "retry": "publishing is the job record's outbox: a failed publish is relayed, not retried "
             "by the caller",
    "retry_policy": "publishing is the job record's outbox: a failed publish is relayed",
    "serializer": "job messages are JSON, always",
    "compression": "job messages are not compressed",
    "stamped_headers": "stamping is not supported",
    "stamps": "stamping is not supported",
    "argsrepr": "a job's message is built by the service",
    "kwargsrepr": "a job's message is built by the service",
    "immutable": "pass an immutable signature (.si()) instead",
}


def _seconds(value: Any, key: str) -> timedelta:
    """Celery's seconds as a timedelta (bounds: ``tasks.jobs.timeouts``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_DELAY_S:
        raise UnsupportedOptionError(key, f"{value!r}: give seconds, as Celery defines it")
    return timedelta(seconds=value)


def _own_queue(task: Any, key: str, value: Any) -> None:
    own = task.queue_name.value
    if value in (None, "", own) or (key == "exchange" and value == "intelgraph"):
        return
    name = getattr(value, "name", value)
    if name == own:
        return
    raise UnsupportedOptionError(key, f"job {task.name} runs on queue {own!r}, not {value!r}")


def _celery_headers(headers: Any) -> None:
    extra = sorted(set(headers or {}) - CELERY_HEADERS)
    if extra:
        raise UnsupportedOptionError("headers", f"{extra} would not reach the job: pass them as "
                                                "job data")


def expires_at(expires: Any, now: datetime | None = None) -> datetime | None:
    """Celery's ``expires``: seconds from now or a datetime, as an instant."""
    if expires is None:
        return None
    now = now or timezone.now()
    if isinstance(expires, datetime):
        if timezone.is_naive(expires):
            raise UnsupportedOptionError("expires", "give a timezone-aware datetime")
        return expires
    if isinstance(expires, timedelta):
        expires = expires.total_seconds()
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) \
            or not math.isfinite(expires) or not 0 <= expires <= MAX_DELAY_S:
        raise UnsupportedOptionError("expires", f"{expires!r}: give seconds (0 to a year), a "
                                                "timedelta or a datetime")
    return now + timedelta(seconds=expires)


def _extras(options: Mapping[str, Any], link: Any, link_error: Any) -> Extras | None:
    canvas = {}
    for key, value in (("link", link), ("link_error", link_error)):
        if value:
            canvas[key] = [_signature(sig) for sig in _as_list(value)]
    if options.get("chain"):
        canvas["chain"] = [_signature(sig) for sig in options["chain"]]
    if options.get("chord") is not None and not options.get("group_id"):
        raise UnsupportedOptionError("chord", "a chord part belongs to a group: use chord()")
    expires = expires_at(options.get("expires"))
    group_index = options.get("group_index")
    if not (canvas or expires or options.get("group_id") or options.get("parent_id")):
        return None
    return Extras(
        parent_id=str(options.get("parent_id") or ""),
        group_id=str(options.get("group_id") or ""),
        group_index=int(group_index) if group_index is not None else None,
        canvas_json=dumps(canvas) if canvas else None,
        expires_at=expires,
    )


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _signature(sig: Any) -> dict:
    """A signature to apply later, checked now: every task it names is a declared job."""
    from celery import current_app
    from celery.canvas import Signature

    from tasks.enqueue.task import RecordingTask

    if not isinstance(sig, dict):
        raise UnsupportedOptionError("link", f"{sig!r} is not a Celery signature")
    sig = Signature.from_dict(sig, app=current_app)
    for name in _task_names(sig):
        if not isinstance(current_app.tasks.get(name), RecordingTask):
            raise UnsupportedOptionError("link", f"{name!r} is not a declared job: each step of "
                                                 "a canvas is a job on record")
    return dict(sig)


def _task_names(sig: Any) -> list[str]:
    """The task names a signature (or a group, chain, chord of them) would run."""
    kind = sig.get("subtask_type")
    kwargs = sig.get("kwargs") or {}
    if kind in ("group", "chain"):
        return [name for part in kwargs.get("tasks", ()) for name in _task_names(part)]
    if kind == "chord":
        return [*(n for part in kwargs.get("header", ()) for n in _task_names(part)),
                *_task_names(kwargs.get("body") or {})]
    return [sig["task"]]
