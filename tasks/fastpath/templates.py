"""Fast path ``message-templates``: Celery's task message made once per task, then filled in.

Celery's ``send_task`` re-reads its configuration, routes, builds protocol-2
headers and ``saferepr``s the arguments on every call: about three times the
cost of the publish it ends in. Here that very path (``Task.apply_async``
into a recording producer) runs once per task, queue, thread and process;
each job's message then swaps in its id, kwargs, kwargs repr and priority.
A job with its own time limits (Celery's ``timelimit`` header) has a template
of its own per distinct ``(hard, soft)`` pair, at most ``LIMIT_VARIANTS`` per
task; past that its messages go by Celery's own path (``sender``).
The assumption (which header fields carry the id, how ``kwargsrepr`` is
made) is private to Celery, so ``verify`` compares a filled-in message with
the one Celery builds for the same job, and a difference turns this off.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.app.task import Task
from celery.utils.saferepr import saferepr

from tasks.fastpath.registry import FastPath, has_attributes

#: Celery's ``kwargsrepr_maxsize`` (``task_protocol`` 2; display only).
REPR_MAX = 1024
#: The id of a template message: replaced by each job's id.
TEMPLATE_ID = "tasks.fastpath:template"
#: Printable ASCII without quotes or backslash: ``repr`` of a flat dict of such
#: strings (and numbers, booleans, None) equals Celery's ``saferepr`` of it.
_PLAIN = re.compile(r"[ !#-&(-\[\]-~]*\Z")
_SCALARS = (int, float, bool, type(None))


def _probe() -> str | None:
    from celery.app.amqp import AMQP

    missing = has_attributes(AMQP, "kwargsrepr_maxsize")
    if missing:
        return missing
    if AMQP.kwargsrepr_maxsize != REPR_MAX:
        return f"Celery's kwargsrepr_maxsize is {AMQP.kwargsrepr_maxsize}, not {REPR_MAX}"
    return None


PATH = FastPath("message-templates", "add_job and add_bulk: publish CPU per job",
                (("celery", "5.7.0"),), _probe)


@dataclass(frozen=True)
class Template:
    body_tail: tuple  # (embed,) of Celery's (args, kwargs, embed) body
    options: dict  # what Celery passed to ``Producer.publish`` besides the body
    declare: tuple  # the queues Celery declares before publishing
    maxlevels: int  # ``task_repr_maxlevels`` when recorded

    def fill(self, job_id: str, data: dict, queue: str, priority: int) -> dict:
        """``Producer.publish`` arguments of one job's message."""
        options = dict(self.options)
        headers = dict(options["headers"])
        headers["id"] = job_id
        if headers.get("root_id") == TEMPLATE_ID:
            headers["root_id"] = job_id
        headers["kwargsrepr"] = kwargs_repr(data, self.maxlevels)
        options["headers"] = headers
        options["correlation_id"] = job_id
        options["priority"] = priority
        options["routing_key"] = queue
        return options

    def body(self, data: dict) -> tuple:
        return ((), data, *self.body_tail)


def kwargs_repr(data: dict, maxlevels: int) -> str:
    """Celery's ``kwargsrepr`` (``saferepr``), by plain ``repr`` where the two agree.

    ``saferepr`` costs ~18 µs for a small dict, ``repr`` under 1 µs; for a flat
    dict of plain strings and scalars they are equal (``tests/unit/test_templates.py``).
    """
    if maxlevels >= 1 and all(
        type(key) is str and _PLAIN.match(key)
        and (type(value) in _SCALARS or (type(value) is str and _PLAIN.match(value)))
        for key, value in data.items()
    ):
        text = repr(data)
        if len(text) <= REPR_MAX:
            return text
    return saferepr(data, REPR_MAX, maxlevels=maxlevels)


class Recorder:
    """Stands in for a producer: keeps what Celery would publish instead of sending it."""

    supports_batch_publish = False

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.published: tuple[Any, dict] | None = None

    def publish(self, body: Any, **options: Any) -> None:
        self.published = (body, options)


def celerys_message(app: Celery, connection: Any, task: Task, job_id: str, data: dict,
                    queue: str, priority: int, limits: tuple | None = None) -> tuple[Any, dict]:
    """(body, publish options) exactly as Celery's own ``apply_async`` makes them.

    ``limits``: the job's own ``(hard, soft)`` time limits in seconds, or None.
    """
    recorder = Recorder(connection)
    extra = {} if limits is None else {"time_limit": limits[0], "soft_time_limit": limits[1]}
    Task.apply_async(task, args=(), kwargs=data, task_id=job_id, queue=queue, routing_key=queue,
                     priority=priority, producer=recorder, **extra)
    assert recorder.published is not None, "Celery published nothing to the recorder"
    return recorder.published


def record(app: Celery, connection: Any, task: Task, queue: str, batching: bool,
           limits: tuple | None = None) -> Template:
    body, options = celerys_message(app, connection, task, TEMPLATE_ID, {}, queue, 0, limits)
    declare = tuple(options.pop("declare", None) or ())
    if batching:
        # Inside a batch ``publish`` only buffers: nothing to retry. The
        # flush is the send, and a failed flush goes to the relay.
        options["retry"] = False
    return Template(tuple(body[2:]), options, declare, app.conf.task_repr_maxlevels)


def template_key(app: Celery, broker: tuple, task: Task, batching: bool,
                 limits: tuple | None = None) -> tuple:
    """Templates are shared per app, broker, task, process and thread (Celery's
    ``origin`` is per process, ``reply_to`` per thread) and time limits."""
    return (id(app), broker, task.name, os.getpid(), threading.get_ident(), batching, limits)


#: Most distinct ``(hard, soft)`` time limits with a template of their own, per task and
#: process: a caller deriving limits from its data would otherwise grow the cache without end.
LIMIT_VARIANTS = 32


#: Samples ``verify`` fills in: one that takes the plain ``repr`` and two that
#: need Celery's ``saferepr`` (nesting beyond its levels, a long value).
SAMPLES = (
    {"to": "a@example.com", "count": 3, "ok": True, "ratio": 0.5, "none": None},
    {"nested": {"a": [1, {"b": {"c": "deep"}}]}, "quote": "it's \"x\"\n", "ü": "é"},
    {"long": "x" * 3000},
)


def verify(app: Celery, connection: Any, task: Task, queue: str, template: Template,
           limits: tuple | None = None) -> str | None:
    """None when the template filled in equals Celery's own message for sample jobs; else why not."""
    for data in SAMPLES:
        job_id = str(uuid.uuid4())
        for priority in (0, 4):
            body, options = celerys_message(app, connection, task, job_id, data, queue, priority,
                                            limits)
            options.pop("declare", None)
            ours = template.fill(job_id, data, queue, priority)
            theirs = {key: value for key, value in options.items() if key != "retry"}
            ours = {key: value for key, value in ours.items() if key != "retry"}
            if ours != theirs:
                changed = sorted(key for key in {*ours, *theirs} if ours.get(key) != theirs.get(key))
                detail = ", ".join(changed)
                if "headers" in changed:
                    headers = sorted(k for k in {*ours["headers"], *theirs["headers"]}
                                     if ours["headers"].get(k) != theirs["headers"].get(k))
                    detail += f" (headers: {', '.join(headers)})"
                return f"a templated message differs from Celery's in {detail}"
            if tuple(body) != template.body(data):
                return "a templated message body differs from Celery's"
    return None
