"""Sending job messages to the broker, after commit, in pipelined chunks.

A job row is written first; its message goes out only once the row is
committed (``transaction.on_commit``). A publish that fails (broker down)
leaves ``published_at`` empty and the promoter's relay sends it later, so
the caller never waits on an unreachable broker for long.

Marking a row published costs a second write per enqueue (on SQLite a
second commit: ~40 % of ``add_job``). On Redis the row is written already
stamped (``stamps_at_insert``) and only a failed publish clears the stamp
for the relay. The one case that stamp hides from the relay, a process
killed between its commit and its publish, is the reconciler's: it
re-publishes waiting jobs published over ``JOB_STUCK_AFTER`` ago whose
message is on no Redis list (``tasks.upkeep.reconciler.reconcile_waiting``).
RabbitMQ cannot be searched that way, so there the row is stamped after
the publisher confirm, as before; the same holds for the rows the promoter,
the relay and a lost run's give-back send (``stamps_at_insert`` decides for
all of them).

A chunk of messages is one send: kombu's ``Producer.batch()`` (the stock
path, ``tasks.enqueue.sending``) or, where the fast paths are on, messages
filled in from one Celery-made template per task and pushed to Redis in one
pipeline (``tasks.fastpath``). A fast path that fails turns itself off and
the chunk goes again by the stock path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from celery import current_app
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from tasks import fastpath
from tasks.enqueue.cursors import raw_cursor, without_wal_wait
from tasks.enqueue.sending import StockSender, producer_for
from tasks.fastpath import FastPathFailed
from tasks.fastpath.sender import FastSender
from tasks.jobs.brokers import BrokerKind, broker_kind
from tasks.jobs.ids import new_job_id
from tasks.jobs.routing import batch_task_name, task_name
from tasks.jobs.timeouts import header_limits
from tasks.models import Job, JobState

logger = logging.getLogger("tasks.enqueue.publishing")


@dataclass(frozen=True)
class Message:
    """What a broker message carries: the job id, its task, kwargs and priority.

    ``limits``: Celery's ``timelimit`` header ``(hard s, soft s)`` of a job with
    its own time limits (``tasks.jobs.timeouts``); ``lifo``: pushed to the front.
    """

    job_id: str
    task_name: str
    queue: str
    data: dict
    priority: int
    data_json: str | None = None  # ``data`` as JSON, when the enqueue already encoded it
    limits: tuple[float | None, float | None] | None = None
    lifo: bool = False
    #: A batch message (``batches``): the jobs it carries; ``job_id`` is then the batch's id.
    job_ids: tuple[str, ...] = ()
    #: Never put in a batch: the job lost a run already (its batch's process died), so it
    #: runs on its own, and a poison job's losses count against it alone.
    alone: bool = False

    @property
    def ids(self) -> tuple[str, ...]:
        """The jobs this message carries."""
        return self.job_ids or (self.job_id,)


def message_for(job: Job) -> Message:
    return Message(job.id, task_name(job.queue, job.name), job.queue, job.data, job.priority,
                   limits=header_limits(job.timeout_ms, job.soft_timeout_ms), lifo=job.lifo,
                   alone=job.lost_count > 0)


#: The job columns a message is made of, in the order ``message_from_values`` reads them
#: (for ``values_list``: re-publishing reads these, not whole rows).
MESSAGE_FIELDS = ("id", "queue", "name", "data", "priority", "timeout_ms", "soft_timeout_ms",
                  "lifo", "lost_count")


def message_from_values(values: Sequence) -> Message:
    job_id, queue, name, data, priority, timeout_ms, soft_timeout_ms, lifo, lost = values
    return Message(job_id, task_name(queue, name), queue, data, priority,
                   limits=header_limits(timeout_ms, soft_timeout_ms), lifo=bool(lifo),
                   alone=bool(lost))


def batch_size(name: str) -> int:
    """Jobs per message of the task ``name`` (``@processor(batch=N)``); 0 for one, or unknown."""
    return getattr(current_app.tasks.get(name), "batch_size", 0) or 0


def batches(messages: Sequence[Message]) -> list[Message]:
    """The messages as sent: a batched processor's jobs grouped, up to its batch size each.

    Jobs of a ``@processor(batch=N)`` of one queue and priority, in their order,
    become messages of up to N ids for its batch task (``tasks.worker.batch``).
    A job with its own time limits or LIFO goes on its own (a batch times each
    job by its processor's limits and is taken from the back of its list), and
    so does a job that lost a run (``Message.alone``).
    Every other message is left as it is, in place.
    """
    out: list[Message | None] = []
    open_batches: dict[tuple[str, str, int], tuple[int, list[Message]]] = {}
    sizes: dict[str, int] = {}
    for message in messages:
        size = sizes.get(message.task_name)
        if size is None:
            size = sizes[message.task_name] = batch_size(message.task_name)
        if (size < 2 or message.limits is not None or message.lifo or message.alone
                or message.job_ids):
            out.append(message)
            continue
        key = (message.task_name, message.queue, message.priority)
        if key not in open_batches:
            open_batches[key] = (len(out), [])
            out.append(None)  # the batch's place, filled when it is full or at the end
        slot, group = open_batches[key]
        group.append(message)
        if len(group) == size:
            out[slot] = _batch_message(group)
            del open_batches[key]
    for slot, group in open_batches.values():
        out[slot] = _batch_message(group)
    return out  # type: ignore[return-value]  (every slot is filled)


def _batch_message(group: list[Message]) -> Message:
    first = group[0]
    ids = tuple(message.job_id for message in group)
    return Message(f"batch-{new_job_id()}", batch_task_name(first.task_name), first.queue,
                   {"ids": list(ids)}, first.priority, job_ids=ids)


#: Messages per pipelined round trip; sent rows are marked published after
#: each chunk, so a long batch never leaves early ones looking unpublished
#: long enough for the relay to resend them. 1,000 measured as fast as 5,000.
CHUNK = 1000


def publish(messages: Sequence[Message], claimed: bool = False, batch: bool = True) -> list[str]:
    """Send messages in pipelined chunks on one pooled connection; return the ids sent.

    By default the sent rows are marked published after each chunk. ``claimed``
    rows were already stamped ``published_at`` in the transaction that wrote
    or took them (the enqueue on Redis; promoter, relay: so no other relay can
    take them meanwhile); the ones that could not be sent are released back
    to the relay. A chunk whose
    pipeline failed counts as unsent as a whole: its delivery is uncertain,
    and a message sent twice runs once (the worker's claim is a compare-and-set).
    ``batch``: a batched processor's jobs go in batch messages (``batches``).
    """
    if not messages:
        return []
    app = current_app
    outgoing = batches(messages) if batch else list(messages)
    sent: list[str] = []
    sent_messages = 0
    broker_errors: tuple[type[BaseException], ...] = (OperationalError, OSError)
    try:
        with app.pool.acquire(block=True) as broker:
            broker_errors += (*broker.connection_errors, *broker.channel_errors)
            # One message gains nothing from a pipeline but pays for setting one up.
            batched = len(outgoing) > 1
            producer = producer_for(app, broker)
            sender = fastpath.sender(app, producer, batched) or StockSender(app, producer, batched)
            for start in range(0, len(outgoing), CHUNK):
                chunk = outgoing[start:start + CHUNK]
                try:
                    _send(sender, chunk)
                except FastPathFailed:  # now off, with a warning: this chunk again, the stock way
                    sender = StockSender(app, producer, batched)
                    _send(sender, chunk)
                ids = [job_id for message in chunk for job_id in message.ids]
                sent.extend(ids)
                sent_messages += len(chunk)
                if not claimed:
                    mark_published(ids)
    except broker_errors as exc:  # broker down or refusing: the relay retries later
        logger.warning("publish failed for %d of %d job(s); left for the relay: %s",
                       len(messages) - len(sent), len(messages), exc)
    except Exception:  # not the broker: a bug, said loudly; the relay still sends the jobs
        logger.exception("publish failed for %d of %d job(s) on an unexpected error; left "
                         "for the relay", len(messages) - len(sent), len(messages))
    if claimed:
        unsent = [job_id for message in outgoing[sent_messages:] for job_id in message.ids]
        if unsent:
            Job.objects.filter(pk__in=unsent, state=JobState.WAITING).update(published_at=None)
    return sent


def _send(sender: FastSender | StockSender, chunk: Sequence[Message]) -> None:
    with sender.chunk():
        for message in chunk:
            sender.send(message.job_id, message.task_name, message.queue, message.data,
                        message.priority, message.data_json, limits=message.limits,
                        lifo=message.lifo)


def mark_published(job_ids: Iterable[str]) -> None:
    """One UPDATE for the ids: rows that already ran (not waiting) stay as they are.

    Outside the caller's transaction the stamp does not wait for PostgreSQL's
    WAL flush (``without_wal_wait``): a lost stamp costs one duplicate message
    from the relay, which the worker's claim runs once.
    """
    ids = list(job_ids)
    if not ids:
        return
    table = connection.ops.quote_name(Job._meta.db_table)
    # SQLite: unary ``+`` keeps the guard off the planner's index choice; on
    # ``state = ?`` it walks the outbox index, every unpublished row per chunk.
    plus = "+" if connection.vendor == "sqlite" else ""
    source = "" if connection.in_atomic_block else without_wal_wait(connection.vendor)
    sql = (f"UPDATE {table} SET published_at = %s{source} WHERE {plus}state = %s "
           f"AND {plus}published_at IS NULL AND id IN ({', '.join(['%s'] * len(ids))})")
    params = [connection.ops.adapt_datetimefield_value(timezone.now()), JobState.WAITING.value,
              *ids]
    with raw_cursor() as cursor:
        cursor.execute(sql, params)


def publish_on_commit(messages: Sequence[Message], claimed: bool = False) -> None:
    """Publish after the caller's transaction commits (at once in autocommit).

    One hook per call, whatever the number of messages. ``claimed``: the rows
    were inserted with ``published_at`` set (``stamps_at_insert``).
    """
    if messages:
        transaction.on_commit(lambda: publish(messages, claimed=claimed))


def stamps_at_insert() -> bool:
    """True when rows are marked published before their message goes out (the broker is Redis).

    False: marked after the publisher confirm, so a process that dies between
    its commit and its send leaves the rows to the relay, the one recovery a
    broker that cannot be searched (RabbitMQ) allows.

    Read off the app's connection pool (kombu's ``driver_type`` is ``redis``
    for ``rediss://`` and ``sentinel://`` too), not ``app.conf.broker_url``:
    a chained-settings lookup per ``add_job``.
    """
    return broker_kind(current_app.pool.connection) is BrokerKind.REDIS
