"""``POST /api/jobs``: a request body checked, the job allowed, then ``add_job``.

The view (``tasks/views.py``) checks who asks; this checks what is asked:
- the body is a JSON object no deeper than ``MAX_DATA_DEPTH`` (a 100,000-deep
  body made the decoder raise ``RecursionError``: a 500);
- the job is one the API may enqueue, ``JOB_API_ALLOWED`` (by default those
  meant to be asked for from outside; not emails to any address, the
  password reset, ``django-task`` or operator jobs), else ``JobNotAllowedError``
  (the view answers 403);
- options are the ones ``add_job`` takes, each validated there.
Every refusal is a ``JobInputError`` naming the problem; nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from tasks.enqueue.api import add_job
from tasks.enqueue.task import get_task
from tasks.jobs.errors import InvalidRequestError, JobNotAllowedError, PayloadTooDeepError
from tasks.jobs.routing import parse_queue
from tasks.jobs.spec import check_depth

#: The ``options`` a request may give (``add_job``'s keyword arguments).
API_OPTIONS = ("priority", "delay", "attempts", "backoff", "job_id", "remove_on_complete",
               "remove_on_fail", "timeout", "soft_timeout", "lifo", "unique_for", "unique_key",
               "debounce")


def api_allowed() -> list[str]:
    """The jobs the API may enqueue, as ``<queue>.<job name>``."""
    return sorted(settings.JOB_API_ALLOWED)


def parse_request(body: bytes | str) -> dict[str, Any]:
    """The request as a dict; ``InvalidRequestError``/``PayloadTooDeepError`` otherwise."""
    try:
        request = json.loads(body or b"{}")
    except RecursionError:
        raise PayloadTooDeepError("the request body") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidRequestError(f"body is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise InvalidRequestError("body must be a JSON object")
    check_depth(request, what="the request body")
    options = request.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidRequestError("options must be an object")
    unknown = sorted(set(options) - set(API_OPTIONS))
    if unknown:
        raise InvalidRequestError(f"unknown options {unknown}; allowed: {list(API_OPTIONS)}")
    return request


def add_job_from_request(body: bytes | str) -> str:
    """Enqueue the job a ``POST /api/jobs`` body asks for; return its id.

    ``{"queue", "name", "data", "options": {"priority", "delay", "attempts",
    "backoff", "job_id"}}``. Raises ``JobNotAllowedError`` for a job outside
    ``JOB_API_ALLOWED`` (before its data or options are looked at), another
    ``JobInputError`` for anything else that is wrong.
    """
    request = parse_request(body)
    queue = parse_queue(request.get("queue"))
    task = get_task(queue, request.get("name"))
    allowed = api_allowed()
    if task.name not in allowed:
        raise JobNotAllowedError(task.name, allowed)
    return add_job(queue, task.job_name, request.get("data"), **(request.get("options") or {}))
