"""Fast path ``redis-push``: job messages rendered as kombu's Redis payload and pushed directly.

kombu's Redis transport stores a message as JSON text (``prepare_message``,
then the private ``_inplace_augment_message``, then ``dumps``) and pushes it
on the list ``_q_for_pri`` names. For every message of a task and queue that
text differs only in the job id, kwargs repr, priority, delivery tag and
body. So it is made once by those very kombu calls on stand-in values and
split where they stand; each message is then a string join, and a chunk is
one ``LPUSH`` per list in one pipeline. ``verify`` decodes a rendered
payload with kombu's own ``message_to_python`` and compares it with the
message Celery would publish; a difference turns this off.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from kombu import Producer
from kombu.entity import maybe_delivery_mode
from kombu.exceptions import DecodeError
from kombu.utils.json import dumps as kombu_dumps

from tasks.fastpath.registry import FastPath, has_attributes
from tasks.fastpath.templates import Template, kwargs_repr
from tasks.jobs.config import PRIORITY_LEVELS

#: ``Producer.publish`` arguments that are not message properties.
_PUBLISH_ARGS = frozenset({
    "exchange", "routing_key", "serializer", "compression", "retry", "retry_policy",
    "delivery_mode", "headers", "timeout", "confirm_timeout", "priority", "declare",
    "mandatory", "immediate", "expiration", "content_type", "content_encoding",
})
#: Stand-ins in a frozen payload, replaced per message.
_SLOTS = ("id", "root_id", "kwargsrepr", "correlation_id", "priority", "delivery_tag", "body")
_STAND_INS = {slot: f"\x00{slot}\x00" for slot in _SLOTS}
#: The job id a frozen payload's options are made for.
STAND_IN_ID = _STAND_INS["id"]
#: kombu Redis channel methods this relies on (all but ``prepare_message`` private).
_CHANNEL_NEEDS = ("_q_for_pri", "_get_message_priority", "_inplace_augment_message",
                  "prepare_message", "encode_body", "message_to_python")


def _probe() -> str | None:
    try:
        from kombu.transport.redis import Channel
    except ImportError as exc:
        return f"kombu's Redis transport does not import: {exc}"
    return has_attributes(Channel, *_CHANNEL_NEEDS)


PATH = FastPath("redis-push", "add_job and add_bulk on Redis: publish CPU per job",
                (("kombu", "5.7.0"),), _probe)


def serves(channel: Any, template: Template, queue: str) -> bool:
    """True where kombu's publish would only push JSON on a list: no exchange to route,
    no compression, no queue expiry, JSON body."""
    options = template.options
    return not (options.get("exchange") or options.get("compression")
                or options.get("serializer", "json") != "json"
                or queue in (getattr(channel, "_expires", None) or ()))


def list_key(channel: Any, queue: str, priority: int) -> str:
    """The Redis list of ``queue`` for a native priority (kombu's own clamping and naming)."""
    level = channel._get_message_priority({"properties": {"priority": priority}}, reverse=False)
    return channel._q_for_pri(queue, level)


def take_back(client: Any, channel: Any, queue: str, job_id: str, limit: int) -> int | None:
    """Remove the messages of ``job_id`` queued on ``queue``'s lists; how many, or None.

    None (and nothing removed) when the lists hold more than ``limit`` messages:
    too many to read. A message a consumer already popped is not on a list
    any more and stays with it. Reads every list (``LRANGE``) and removes the
    exact payloads whose ``headers.id`` is the job's (``LREM``).
    """
    keys = list(dict.fromkeys(list_key(channel, queue, level) for level in range(PRIORITY_LEVELS)))
    if sum(client.llen(key) for key in keys) > limit:
        return None
    needle = _quote(job_id).encode()
    removed = 0
    for key in keys:
        for raw in client.lrange(key, 0, -1):
            if needle not in raw:
                continue
            try:
                if json.loads(raw)["headers"]["id"] != job_id:
                    continue
            except (ValueError, KeyError, TypeError):
                continue
            removed += client.lrem(key, 0, raw)
    return removed


@dataclass(frozen=True)
class FrozenPayload:
    """A Redis payload as JSON text with slots: one string join per message."""

    parts: tuple[str, ...]  # text between slots: len(slots) + 1
    slots: tuple[str, ...]  # slot names in text order
    tail: str  # the body after the kwargs: ``, <embed>]``
    body_encoding: str | None
    channel: Any
    maxlevels: int

    @classmethod
    def make(cls, producer: Producer, template: Template, options: dict,
             queue: str) -> FrozenPayload:
        """Made by the kombu calls ``Producer.publish`` makes, on stand-in values.

        ``options``: the template filled in for job id ``STAND_IN_ID``.
        """
        channel = producer.channel
        stand_in = _STAND_INS
        headers = options["headers"]
        if headers.get("root_id") == stand_in["id"]:
            headers["root_id"] = stand_in["root_id"]
        headers["kwargsrepr"] = stand_in["kwargsrepr"]
        options["correlation_id"] = stand_in["correlation_id"]
        properties = {k: v for k, v in options.items() if k not in _PUBLISH_ARGS}
        properties["delivery_mode"] = maybe_delivery_mode(
            options.get("delivery_mode") or producer.exchange.delivery_mode
        )
        properties["priority"] = stand_in["priority"]
        message = channel.prepare_message(
            stand_in["body"], stand_in["priority"], "application/json", "utf-8", headers,
            properties,
        )
        channel._inplace_augment_message(message, "", queue)  # body encoding, delivery tag
        body_encoding = message["properties"]["body_encoding"]
        message["body"] = stand_in["body"]  # encoded per message, in ``render``
        message["properties"]["delivery_tag"] = stand_in["delivery_tag"]
        text = kombu_dumps(message)
        quoted = {kombu_dumps(value): slot for slot, value in stand_in.items()}
        parts, slots, rest = [], [], text
        while True:
            found = [(rest.find(q), q) for q in quoted if q in rest]
            if not found:
                break
            at, q = min(found)
            parts.append(rest[:at])
            slots.append(quoted[q])
            rest = rest[at + len(q):]
        parts.append(rest)
        tail = kombu_dumps(((), {}, *template.body_tail))
        tail = tail[tail.index("{}") + 2:]
        return cls(tuple(parts), tuple(slots), tail, body_encoding, channel, template.maxlevels)

    def render(self, job_id: str, data: dict, data_json: str | None, priority: int) -> str:
        body = "[[], " + (data_json if data_json is not None else kombu_dumps(data)) + self.tail
        body, _ = self.channel.encode_body(body, self.body_encoding)
        quoted_id = _quote(job_id)
        values = {
            "id": quoted_id, "root_id": quoted_id, "correlation_id": quoted_id,
            "kwargsrepr": _quote(kwargs_repr(data, self.maxlevels)), "priority": str(priority),
            "delivery_tag": '"' + str(uuid.uuid4()) + '"', "body": _quote(body),
        }
        parts = self.parts
        out = [parts[0]]
        for i, slot in enumerate(self.slots, 1):
            out.append(values[slot])
            out.append(parts[i])
        return "".join(out)


def verify(producer: Producer, template: Template, frozen: FrozenPayload, queue: str,
           samples: tuple[dict, ...]) -> str | None:
    """None when rendered payloads decode (by kombu) to the message Celery would publish."""
    channel = producer.channel
    for data in samples:
        job_id = str(uuid.uuid4())
        options = template.fill(job_id, data, queue, 3)
        try:
            message = channel.message_to_python(json.loads(frozen.render(job_id, data, None, 3)))
            body = message.decode()
        except (ValueError, KeyError, TypeError, DecodeError) as exc:
            return f"a rendered Redis payload does not decode: {type(exc).__name__}: {exc}"
        expected_properties = {k: v for k, v in options.items() if k not in _PUBLISH_ARGS}
        got = {
            "headers": message.headers,
            "body": body,
            "content_type": message.content_type,
            "priority": message.properties.get("priority"),
            **{key: message.properties.get(key) for key in expected_properties},
        }
        want = {
            "headers": options["headers"],
            "body": json.loads(json.dumps(template.body(data))),
            "content_type": "application/json",
            "priority": 3,
            **expected_properties,
        }
        if got != want:
            changed = sorted(key for key in want if got.get(key) != want.get(key))
            return f"a rendered Redis payload decodes differently from Celery's message in {changed}"
    return None
