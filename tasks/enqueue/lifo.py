"""LIFO jobs (BullMQ's ``lifo``): taken before the other waiting jobs of their priority.

kombu's Redis transport keeps one list per queue and priority, adds messages
with ``LPUSH`` and its consumer takes them with ``BRPOP``: first in, first
out. A LIFO job's message is added with ``RPUSH`` instead, at the end taken
next; only the ``redis-push`` fast path writes to the lists itself
(``tasks.fastpath.sender``). Where it cannot (RabbitMQ, which has no way to
put a message in front; fast paths off) the option is refused at the call,
with nothing written. A LIFO job re-published later (promoted after a delay,
retried, relayed) by a process that cannot honour it goes to the back with a
WARNING naming the job.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import current_app

from tasks import fastpath
from tasks.jobs.errors import UnsupportedOptionError
from tasks.jobs.spec import JobSpec


def check(specs: Iterable[JobSpec]) -> None:
    """``UnsupportedOptionError`` naming ``lifo`` and why, if a spec asks for it here in vain."""
    if any(spec.extras is not None and spec.extras.lifo for spec in specs):
        problem = fastpath.lifo_problem(current_app)
        if problem:
            raise UnsupportedOptionError("lifo", problem)
