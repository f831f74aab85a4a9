"""Server-sent events for the dashboard (``view_job`` permission): the live stream, filtered.

``GET /queues/events`` (optionally ``?job=<id>`` or ``?queue=<name>``) answers
``text/event-stream``: one ``job`` event per change (event name, job id,
queue, name, state, attempts, progress: no data, result or error, which the
pages fetch themselves), a ``resync`` event when this client fell behind and
should reload what it shows, and a comment every ``KEEPALIVE_S`` so proxies
keep the connection. A response ends after ``MAX_AGE_S``; the browser's
``EventSource`` reconnects by itself (``retry``), and the page refreshes its
figures once on every (re)connection, so a gap between two responses is
covered.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponseBadRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from tasks.jobs import permissions
from tasks.jobs.config import QUEUE_NAMES
from tasks.operate.dashboard.access import permission_required
from tasks.operate.live import LiveStream, live_stream

KEEPALIVE_S = 15.0
MAX_AGE_S = 300.0
RETRY_MS = 2000
#: What a ``job`` event tells the browser.
FIELDS = ("event", "job_id", "queue", "name", "state", "attempts_made", "progress")


def _lines(stream: LiveStream, job: str | None, queue_name: str | None) -> Iterator[str]:
    inbox = stream.subscribe()
    try:
        yield f"retry: {RETRY_MS}\nevent: hello\ndata: {{}}\n\n"
        ends = time.monotonic() + MAX_AGE_S
        while (left := ends - time.monotonic()) > 0:
            try:
                event = inbox.get(timeout=min(KEEPALIVE_S, left))
            except queue.Empty:
                yield ": keepalive\n\n"
                continue
            if event is None:
                yield "event: resync\ndata: {}\n\n"
                continue
            if (job and event.job_id != job) or (queue_name and event.queue != queue_name):
                continue
            payload = {name: getattr(event, name) for name in FIELDS}
            yield f"event: job\ndata: {json.dumps(payload, default=str)}\n\n"
    finally:
        stream.unsubscribe(inbox)


@permission_required(permissions.VIEW)
@require_GET
def events(request: HttpRequest) -> StreamingHttpResponse | HttpResponseBadRequest:
    """The live stream as server-sent events."""
    queue_name = request.GET.get("queue") or None
    if queue_name is not None and queue_name not in QUEUE_NAMES:
        return HttpResponseBadRequest(f"no queue {queue_name!r}")
    response = StreamingHttpResponse(_lines(live_stream(), request.GET.get("job") or None,
                                            queue_name),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
