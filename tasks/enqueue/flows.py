"""Flows: a parent job that waits for its children (BullMQ's ``FlowProducer``), on record.

    add_flow({"queue": "analytics", "name": "weekly-report", "data": {},
              "children": [{"queue": "data-processing", "name": "process-data",
                            "data": {...}, "on_failure": "ignore"}, ...]})

Every node is validated first, then all rows are written in one transaction:
leaves are waiting (published on commit), a parent is ``waiting-children``
and a ``JobGroup`` counts its children. Each child's completion decrements
that count in the transaction recording it; the one reaching zero moves the
parent to waiting and publishes it (``tasks.worker.canvas``), so a parent
starts once, whatever is killed. A child that fails for good (or is
cancelled) acts by its ``on_failure``: ``fail`` (the default) fails the
parent, ``ignore`` lets the parent run and see the failure
(``job.children_failures()``), ``remove`` drops the dependency. The parent
reads its children's results with ``job.children_values()``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from tasks.enqueue.api import job_spec
from tasks.enqueue.records import enqueue
from tasks.jobs.errors import InvalidFlowError
from tasks.jobs.ids import new_job_id
from tasks.jobs.spec import Extras, JobSpec

ON_FAILURE = ("fail", "ignore", "remove")
#: A node's keys besides the job options of ``add_job``.
NODE_KEYS = frozenset({"queue", "name", "data", "children", "on_failure", "options"})
#: Deepest nesting and most jobs one flow may hold.
MAX_DEPTH = 16
MAX_JOBS = 10_000


@dataclass(frozen=True)
class Flow:
    """The ids of a flow's jobs, as a tree (BullMQ's ``JobNode``)."""

    id: str
    queue: str
    name: str
    children: tuple[Flow, ...] = ()


def flow_group(parent_id: str) -> str:
    """The ``JobGroup`` that counts a parent's children."""
    return f"flow:{parent_id}"


def add_flow(node: Mapping[str, Any]) -> Flow:
    """Write a flow's jobs in one transaction; returns their ids as a tree.

    Raises a ``JobInputError`` subclass, with nothing written, for any bad node.
    """
    from tasks.models import JobGroup

    planned: list[JobSpec] = []
    groups: list[tuple[str, list[str]]] = []
    tree = _plan(node, None, 0, planned, groups)
    with transaction.atomic():
        for spec in planned:
            enqueue(spec)
        JobGroup.objects.bulk_create([
            JobGroup(id=flow_group(parent), parent=parent, members=members,
                     remaining=len(members))
            for parent, members in groups])
    return tree


def _plan(node: Any, parent: tuple[str, int] | None, depth: int,
          planned: list[JobSpec], groups: list[tuple[str, list[str]]]) -> Flow:
    if not isinstance(node, Mapping):
        raise InvalidFlowError(f"a node must be an object, not {type(node).__name__}")
    unknown = sorted(set(node) - NODE_KEYS)
    if unknown:
        raise InvalidFlowError(f"unknown keys {unknown}; a node has {sorted(NODE_KEYS)}")
    if depth > MAX_DEPTH or len(planned) >= MAX_JOBS:
        raise InvalidFlowError(f"at most {MAX_DEPTH} levels and {MAX_JOBS} jobs")
    policy = node.get("on_failure", "fail")
    if policy not in ON_FAILURE:
        raise InvalidFlowError(f"on_failure {policy!r} is not one of {list(ON_FAILURE)}")
    options = dict(node.get("options") or {})
    children = list(node.get("children") or [])
    if "job_id" in options:
        raise InvalidFlowError("job_id is not supported in a flow: its ids are made for it")
    if children and options.get("delay"):
        raise InvalidFlowError("a parent starts when its children complete: give it no delay")
    spec = job_spec(node.get("queue"), node.get("name"), node.get("data"), options)
    job_id = new_job_id()
    extras = spec.extras or Extras()
    if parent is not None:
        parent_id, index = parent
        extras = dataclasses.replace(extras, parent_id=parent_id, group_id=flow_group(parent_id),
                                     group_index=index,
                                     canvas_json=json.dumps({"flow": policy}))
    if children:
        extras = dataclasses.replace(extras, waits_for_children=True)
    planned.append(dataclasses.replace(spec, job_id=job_id, extras=extras))
    kids = tuple(_plan(child, (job_id, i), depth + 1, planned, groups)
                 for i, child in enumerate(children))
    if kids:
        groups.append((job_id, [kid.id for kid in kids]))
    return Flow(job_id, spec.queue.value, spec.name, kids)
