"""Redis payloads of job messages, rendered from one frozen kombu message per task.

kombu's Redis transport stores a message as JSON text (``prepare_message``
then ``_inplace_augment_message``, then ``dumps``). For every message of a
task and queue that text differs only in the job id (also the correlation
and root ids), the kwargs repr, the priority, a fresh delivery tag and the
body. So the text is made once by those very kombu calls on stand-in values
and split where they stand; each message is then a string join. The body's
kwargs are the enqueue's own JSON of the data when it has one (encoded once,
while checking its size).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from kombu import Producer
from kombu.entity import maybe_delivery_mode
from kombu.utils.json import dumps as kombu_dumps

#: Celery's ``argsrepr``/``kwargsrepr`` limit (``task_protocol`` 2, display only).
REPR_MAX = 1024
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


@dataclass(frozen=True)
class FrozenPayload:
    """A Redis payload as JSON text with slots: one string join per message.

    Made once per task and queue by the very kombu calls ``Producer.publish``
    makes (serialise, ``prepare_message``, ``_inplace_augment_message``),
    run on stand-in values, then split where they stand. Per message only
    the id, kwargs repr, priority, delivery tag and body are encoded: the
    kombu calls and two JSON encodes of the whole message measured ~70 % of
    ``add_bulk``'s publish.
    """

    parts: tuple[str, ...]  # text between slots: len(slots) + 1
    slots: tuple[str, ...]  # slot names in text order
    tail: str  # the body after the kwargs: ``, <embed>]``
    body_encoding: str | None
    channel: Any

    @classmethod
    def make(cls, producer: Producer, options: dict, body_tail: tuple, queue: str) -> FrozenPayload:
        """``options``: a message's ``Producer.publish`` arguments, made for id ``STAND_IN_ID``."""
        channel = producer.channel
        stand_in = _STAND_INS
        options = {**options, "headers": dict(options["headers"])}
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
        tail = kombu_dumps(((), {}, *body_tail))
        tail = tail[tail.index("{}") + 2:]
        return cls(tuple(parts), tuple(slots), tail, body_encoding, channel)

    def render(self, job_id: str, data: dict, data_json: str | None, priority: int) -> str:
        kwargsrepr = repr(data)
        if len(kwargsrepr) > REPR_MAX:
            kwargsrepr = kwargsrepr[:REPR_MAX - 3] + "..."
        body = "[[], " + (data_json if data_json is not None else kombu_dumps(data)) + self.tail
        body, _ = self.channel.encode_body(body, self.body_encoding)
        quoted_id = _quote(job_id)
        values = {
            "id": quoted_id, "root_id": quoted_id, "correlation_id": quoted_id,
            "kwargsrepr": _quote(kwargsrepr), "priority": str(priority),
            "delivery_tag": '"' + str(uuid.uuid4()) + '"', "body": _quote(body),
        }
        parts = self.parts
        out = [parts[0]]
        for i, slot in enumerate(self.slots, 1):
            out.append(values[slot])
            out.append(parts[i])
        return "".join(out)
