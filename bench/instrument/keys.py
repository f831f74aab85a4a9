"""Redis keys (counter database, db 0) the job bodies write and the driver reads."""

from __future__ import annotations

#: ``INCR``-ed once per no-op or sleep job.
COUNTER_KEY = "bench:counter"
#: A probe's ``kind t0 started`` line, pushed first thing in its body.
STARTED_KEY = "bench:started"
#: A probe's ``kind t0 finished`` line, pushed from ``task_postrun``.
FINISHED_KEY = "bench:finished"
