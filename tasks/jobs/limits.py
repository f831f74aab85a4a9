"""Bounds on every number and name a caller gives, each with its unit and its reason.

A value outside them is refused at the call site with a ``JobInputError``
naming it (``tasks.jobs.spec``, ``tasks.jobs.backoff``): beyond them
``datetime`` arithmetic overflows, a 32-bit column (PostgreSQL ``integer``)
overflows, or a decoder runs out of stack, and what was a bad value became
a 500 or a job stuck in its failure path.
"""

from __future__ import annotations

from datetime import timedelta

#: Longest ``delay``: a year. ``now + delay`` overflows ``datetime`` near
#: 10**11 s, and nothing here plans further ahead than a yearly report.
MAX_DELAY_S = 365 * 24 * 3600
#: The same in milliseconds, the unit of a numeric ``delay`` (as in BullMQ): a larger
#: number is more likely seconds, or a unit mistake, than a plan.
MAX_DELAY_MS = MAX_DELAY_S * 1000

#: Most ``attempts`` a job may have. Retries of a transient error; a job
#: that needs more is better rescheduled. ``max_attempts`` is a 32-bit column.
MAX_ATTEMPTS = 100

#: Longest backoff ``delay`` and ``max_delay``: a day, in milliseconds.
#: ``timedelta(milliseconds=10**20)`` overflows inside the failure path.
MAX_BACKOFF_MS = 24 * 3600 * 1000

#: Deepest nesting of containers (objects and arrays) in job data, and in an
#: API request body. kwargs are flat in practice; Python's JSON encoder and
#: decoder recurse and fail near 1,000 levels (in the worker's decoder too).
MAX_DATA_DEPTH = 64

#: Longest job id, in characters: the primary-key column is ``varchar(255)``.
MAX_JOB_ID_CHARS = 255

#: Oldest age ``clean`` accepts: ten years. ``now - age`` overflows ``datetime``
#: for ages beyond year 1, and no job is kept this long.
MAX_CLEAN_AGE = timedelta(days=3650)

#: Shortest per-job ``timeout``/``soft_timeout``: a second. The job's own start
#: (its claim, a connection check) counts against it, and a smaller number is
#: more likely seconds than a plan. The longest is below the broker's visibility
#: timeout (``tasks.jobs.timeouts``): Redis hands a job still running then to a
#: second worker (check tasks.E001 holds the queue presets to the same bound).
MIN_TIMEOUT_MS = 1000

#: Most jobs one batched message carries (``@processor(batch=N)``): the claim is
#: one ``UPDATE … WHERE id IN (…)`` of that many ids (SQLite binds at most
#: 32,766 values), and a killed batch re-runs at most this many jobs' worth.
MAX_BATCH = 1000
