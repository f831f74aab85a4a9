"""The live stream of job events in a long-running process (the web process runs one).

Where the events come from: the job table is the record, so the stream reads
its changes there, in one small pass per tick (``JOB_EVENTS_TICK``, 1 s):
rows created since the last pass, the active rows (progress), rows finished
since the last pass, and the rows of jobs the workers' Celery task events
named. Those task events travel through the broker (``task-received``,
``task-started``, ``task-succeeded``, ``task-failed`` …, sent by every worker
anyway for Flower) and only wake the stream up early, so a change shows
within milliseconds; when the broker's event channel is down, the next tick
still finds every change on record. Nothing is added to the worker's path.

``Changes`` turns successive views of a row into events in their order
(added, retrying, active, progress, completed/failed/cancelled), remembering
the last view of recently seen jobs, so a change is delivered once while it
is remembered and at least once in any case (``tasks.jobs.signals``).

Each event is sent as its Django signal in the stream's thread, and put on
the queue of every subscriber (the dashboard's server-sent events): a
subscriber too slow to keep up gets one ``resync`` event instead of silently
missing some.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from tasks.jobs.config import QueueName
from tasks.jobs.signals import SIGNALS
from tasks.jobs.states import ALL_STATES, FINISHED_STATES, JobState
from tasks.models import Job

logger = logging.getLogger(__name__)

#: Rows are read back this far before the last pass: a worker's commit lands a
#: moment after the time it wrote, and hosts' clocks differ a little.
OVERLAP = timedelta(seconds=5)
#: Jobs remembered (their last view); beyond, the oldest are forgotten.
REMEMBERED = 100_000
#: Events a subscriber may have pending before it is told to resync.
SUBSCRIBER_BACKLOG = 1_000
#: The columns a pass reads.
COLUMNS = ("id", "queue", "name", "state", "attempts_made", "progress", "created_at",
           "started_at", "result", "errors")
#: Celery task events that name a job whose row changed (or is about to).
TASK_EVENTS = ("task-received", "task-started", "task-succeeded", "task-failed",
               "task-retried", "task-revoked", "task-rejected")


@dataclass(frozen=True)
class JobEvent:
    """One event: which job, what happened, and the row's view at the time."""

    event: str
    job_id: str
    queue: str
    name: str
    state: str
    attempts_made: int
    progress: Any
    result: Any = None
    error: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _View:
    state: str
    attempts: int
    retries: int  # retries delivered
    actives: int  # the last attempt whose start was delivered
    progress: Any


def _retries(state: str, attempts: int) -> int:
    """Failed attempts followed by another one, from a row's state and attempt count."""
    if state in (JobState.WAITING, JobState.DELAYED):
        return attempts  # the last attempt failed and the next waits
    return max(attempts - 1, 0)


class Changes:
    """Turns rows into events, remembering the last view of up to ``capacity`` jobs.

    Attempts are numbered by the row's ``attempts_made``, so an attempt that
    started and failed between two passes still gives its ``active`` and
    ``retrying`` events, in order.
    """

    def __init__(self, since: datetime, capacity: int = REMEMBERED) -> None:
        self.since = since  # jobs created before it are not "added" when first seen
        self.capacity = capacity
        self.views: OrderedDict[str, _View] = OrderedDict()

    def was_active(self) -> list[str]:
        return [job_id for job_id, view in self.views.items() if view.state == JobState.ACTIVE]

    def events_for(self, row: dict[str, Any]) -> list[JobEvent]:
        job_id, state, attempts = row["id"], row["state"], row["attempts_made"]
        progress = row["progress"]
        errors = row["errors"] or []
        last_error = errors[-1] if errors else None
        new_job = row["created_at"] is not None and row["created_at"] >= self.since
        retries = _retries(state, attempts)
        running = attempts if (state == JobState.ACTIVE or (
            state in (JobState.COMPLETED, JobState.FAILED) and row["started_at"] is not None)) else 0
        view = self.views.get(job_id)
        events: list[tuple[str, dict[str, Any]]] = []
        if view is None:
            if new_job:
                events.append(("added", {}))
                view = _View("", 0, 0, 0, 0)
            else:  # an older job's past is not replayed
                view = _View("", attempts, retries, max(running - 1, 0), 0)
        elif attempts < view.attempts or (view.state in FINISHED_STATES and state != view.state):
            view = _View(view.state, 0, 0, 0, 0)  # retried by hand: it starts over
        for number in range(view.retries + 1, retries + 1):
            if number > view.actives:
                events.append(("active", {"attempts_made": number}))
                view.actives = number
            events.append(("retrying", {"error": last_error, "attempts_made": number}))
        started = running > view.actives
        if started:
            events.append(("active", {}))
            view.actives = running
        if state == JobState.ACTIVE and progress not in (0, None) and (
                started or progress != view.progress):
            events.append(("progress", {}))
        if state in FINISHED_STATES and view.state != state:
            extra: dict[str, Any] = {}
            if state == JobState.COMPLETED:
                extra = {"result": row["result"]}
            elif state == JobState.FAILED:
                extra = {"error": last_error}
            events.append((state, extra))
        self.views[job_id] = _View(state, attempts, max(retries, view.retries), view.actives,
                                   progress)
        self.views.move_to_end(job_id)
        while len(self.views) > self.capacity:
            self.views.popitem(last=False)
        base = {"job_id": job_id, "queue": row["queue"], "name": row["name"], "state": state,
                "attempts_made": attempts, "progress": progress}
        return [JobEvent(event=name, **{**base, **extra}) for name, extra in events]


class LiveStream:
    """Reads job changes each tick (or when a task event wakes it) and delivers them."""

    def __init__(self, app: Any, tick_s: float | None = None, listen: bool = True) -> None:
        self.app = app
        self.tick_s = tick_s if tick_s is not None else settings.JOB_EVENTS_TICK_S
        self.listen = listen
        self.started_at = timezone.now()
        self.changes = Changes(self.started_at - OVERLAP)
        self.last_pass = self.started_at - OVERLAP
        self.named: set[str] = set()
        self.subscribers: dict[queue.Queue, bool] = {}
        self.listening = threading.Event()
        self.heard = threading.Event()  # an event (a worker's heartbeat too) came through
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._receiver: Any = None

    # --- subscribers (the dashboard's server-sent events) ---------------------------

    def subscribe(self) -> queue.Queue:
        """A queue that receives every event from now on (``None`` items: resync)."""
        inbox: queue.Queue = queue.Queue(SUBSCRIBER_BACKLOG)
        with self._lock:
            self.subscribers[inbox] = True
        return inbox

    def unsubscribe(self, inbox: queue.Queue) -> None:
        with self._lock:
            self.subscribers.pop(inbox, None)

    # --- the pass ---------------------------------------------------------------------

    def scan(self) -> list[JobEvent]:
        """One pass over the job table's changes; sends and returns the events found."""
        started = timezone.now()
        since = self.last_pass - OVERLAP
        with self._lock:
            named, self.named = self.named, set()
        queues = [q.value for q in QueueName]
        rows: dict[str, dict[str, Any]] = {}
        for query in (
            Job.objects.filter(queue__in=queues, state__in=ALL_STATES, created_at__gt=since),
            Job.objects.filter(queue__in=queues, state=JobState.ACTIVE),
            Job.objects.filter(queue__in=queues, state__in=FINISHED_STATES,
                               finished_at__gt=since),
        ):
            for row in query.values(*COLUMNS):
                rows[row["id"]] = row
        recheck = (named | set(self.changes.was_active())) - rows.keys()
        recheck_ids = list(recheck)
        for start in range(0, len(recheck_ids), 500):
            for row in Job.objects.filter(pk__in=recheck_ids[start:start + 500]).values(*COLUMNS):
                rows[row["id"]] = row
        ordered = sorted(rows.values(), key=lambda r: (r["created_at"] or started, r["id"]))
        events = [event for row in ordered for event in self.changes.events_for(row)]
        self.last_pass = started
        for event in events:
            self.deliver(event)
        return events

    def deliver(self, event: JobEvent) -> None:
        """Send the event's signal (a failing receiver is logged) and queue it for subscribers."""
        signal = SIGNALS[event.event]
        fields = event.as_dict()
        fields.pop("event")
        if event.event != "completed":
            fields.pop("result")
        if event.event not in ("failed", "retrying"):
            fields.pop("error")
        for receiver, outcome in signal.send_robust(sender=Job, **fields):
            if isinstance(outcome, Exception):
                logger.error("job_%s receiver %r failed for job %s", event.event, receiver,
                             event.job_id, exc_info=outcome)
        with self._lock:
            subscribers = list(self.subscribers)
        for inbox in subscribers:
            try:
                inbox.put_nowait(event)
            except queue.Full:
                self._resync(inbox)

    def _resync(self, inbox: queue.Queue) -> None:
        """Empty a full subscriber's queue and leave one ``None``: "reload, you missed some"."""
        logger.warning("a live-events subscriber fell %d events behind: told to resync",
                       SUBSCRIBER_BACKLOG)
        while True:
            try:
                inbox.get_nowait()
            except queue.Empty:
                break
        inbox.put_nowait(None)

    # --- threads ----------------------------------------------------------------------

    def start(self) -> LiveStream:
        """Start the pass loop (and the task-event listener) once; returns self."""
        with self._lock:
            if self._threads:
                return self
            self._threads = [threading.Thread(target=self._passes, name="job-events",
                                              daemon=True)]
            if self.listen:
                self._threads.append(threading.Thread(target=self._listen,
                                                      name="job-events-listener", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        for thread in self._threads:
            thread.join(timeout)

    def _passes(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.tick_s)
                self._wake.clear()
                if self._stop.is_set():
                    break
                close_old_connections()
                try:
                    self.scan()
                except Exception:
                    # The next pass reads the same changes again (the watermark did not move).
                    logger.exception("job events: a pass over the job table failed; retrying")
                    time.sleep(self.tick_s)
        finally:
            connection.close()

    def _on_event(self, event: dict[str, Any]) -> None:
        self.heard.set()
        if event.get("type") in TASK_EVENTS and event.get("uuid"):
            with self._lock:
                self.named.add(event["uuid"])
            self._wake.set()

    def _listen(self) -> None:
        """Receive the workers' task events (broker fanout) to wake the pass loop early."""
        handlers = {"*": self._on_event}
        pause = 1.0
        while not self._stop.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    self._receiver = self.app.events.Receiver(conn, handlers=handlers)
                    self.listening.set()
                    pause = 1.0
                    self._receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception as exc:  # the pass loop still reads every change each tick
                self.listening.clear()
                if self._stop.is_set():
                    break
                logger.warning("job events: task-event listener lost the broker (%s); "
                               "changes are read every %.1f s until it reconnects in %.0f s",
                               exc, self.tick_s, pause)
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)
        self.listening.clear()


def live_stream(start: bool = True) -> LiveStream:
    """This process's live stream (made on first use, kept by the app config)."""
    from celery import current_app

    config = apps.get_app_config("tasks")
    with config.live_lock:
        if config.live_stream is None:
            config.live_stream = LiveStream(current_app)
        stream = config.live_stream
    return stream.start() if start else stream
