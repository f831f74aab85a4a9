"""The promoter's rate gate: global rate limits and held queues, applied where jobs are released.

Jobs of a rate-limited queue or job name are written as due delayed rows
(``tasks.enqueue.ratelimits``); the promoter releases at most a limit's number
per window (fixed windows aligned on the epoch), counting slots in
``RateWindow`` so a new promoter taking over the lease carries on. A job over
the limit is moved to the next window, as a row. A queue held after a
processor was told to slow down (``RateLimited``, HTTP 429) releases nothing
until ``held_until``. Only the promoter holding the lease releases gated jobs,
so the slots have one writer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection

from tasks.enqueue import ratelimits
from tasks.jobs.rates import Rate
from tasks.models import RateWindow
from tasks.worker.presence import held_queues


def window_start(rate: Rate, now: datetime) -> datetime:
    stamp = int(now.timestamp()) // rate.per_s * rate.per_s
    return datetime.fromtimestamp(stamp, UTC)


def window_key(key: ratelimits.Key) -> str:
    return f"{key[0]}|{key[1]}"


class Gate:
    """Decides, job by job, what one promotion may release now; ``commit()`` records the slots."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.limits = ratelimits.current()
        self.held = held_queues(now)
        self._free: dict[ratelimits.Key, int] = {}
        self._taken: dict[ratelimits.Key, int] = {}

    @property
    def idle(self) -> bool:
        """True when nothing is limited or held: every due job may go."""
        return not self.limits and not self.held

    def gated(self, queue: str, name: str) -> bool:
        return queue in self.held or bool(ratelimits.keys_of(queue, name, self.limits))

    def admit(self, queue: str, name: str) -> datetime | None:
        """None when the job may be released now (its slots are taken); else when to retry."""
        if queue in self.held:
            return self.held[queue]
        keys = ratelimits.keys_of(queue, name, self.limits)
        full = [key for key in keys if self._free_slots(key) <= 0]
        if full:
            return max(window_start(self.limits[key], self.now)
                       + timedelta(seconds=self.limits[key].per_s) for key in full)
        for key in keys:
            self._free[key] -= 1
            self._taken[key] = self._taken.get(key, 0) + 1
        return None

    def _free_slots(self, key: ratelimits.Key) -> int:
        if key not in self._free:
            rate = self.limits[key]
            used = (RateWindow.objects.filter(key=window_key(key),
                                              start=window_start(rate, self.now))
                    .values_list("used", flat=True).first() or 0)
            self._free[key] = rate.jobs - used
        return self._free[key]

    def commit(self) -> None:
        """Record the slots taken, in the promotion's transaction."""
        if not self._taken:
            return
        qn = connection.ops.quote_name
        table = qn(RateWindow._meta.db_table)
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            for key, taken in self._taken.items():
                cursor.execute(
                    f"INSERT INTO {table} ({qn('key')}, {qn('start')}, {qn('used')}) "
                    f"VALUES (%s, %s, %s) ON CONFLICT ({qn('key')}, {qn('start')}) "
                    f"DO UPDATE SET {qn('used')} = {table}.{qn('used')} + excluded.{qn('used')}",
                    [window_key(key), adapt(window_start(self.limits[key], self.now)), taken])


def forget_old_windows(now: datetime) -> int:
    """Windows a day old are of no use."""
    return RateWindow.objects.filter(start__lt=now - timedelta(days=1)).delete()[0]
