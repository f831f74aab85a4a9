"""Django signals for a job's state changes: the counterpart of BullMQ's ``QueueEvents``.

They are sent in a process that runs the live stream (``tasks.operate.live``;
the web process does), never on the worker's hot path, with ``sender=Job``
and these keyword arguments:

- ``job_id``, ``queue``, ``name``, ``state`` (the state the job is in),
  ``attempts_made``, ``progress``;
- ``job_completed``: ``result``; ``job_failed`` and ``job_retrying``:
  ``error`` (the attempt's entry in the job's errors: attempt, error, traceback).

Delivery is **at least once**: the stream reads changes from the job table
(woken by the workers' task events through the broker), so a change made
while the broker's event channel was down is still delivered, and a change
can be delivered twice (after a restart of the listening process, or when
the stream has forgotten a job it saw long ago). Receivers must be
idempotent, keyed by ``job_id`` and ``state`` (and ``attempts_made`` for
``job_retrying``). Changes made while no process runs the stream are not
replayed when it starts.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A job was written (waiting, delayed, or waiting for its children).
job_added = Signal()
#: An attempt started on a worker.
job_active = Signal()
#: The processor reported progress (seen at most once a tick, the latest value).
job_progress = Signal()
#: The job completed; ``result`` is its return value.
job_completed = Signal()
#: The job failed for good (attempts exhausted or a permanent error).
job_failed = Signal()
#: An attempt failed and the job waits for its next one (``attempts_made`` so far).
job_retrying = Signal()
#: The job was cancelled (waiting, delayed or active).
job_cancelled = Signal()

#: The signal sent for each event name (the names the dashboard's stream uses).
SIGNALS: dict[str, Signal] = {
    "added": job_added,
    "active": job_active,
    "progress": job_progress,
    "completed": job_completed,
    "failed": job_failed,
    "retrying": job_retrying,
    "cancelled": job_cancelled,
}
