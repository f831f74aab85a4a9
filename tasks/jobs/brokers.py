"""Which kind of broker a URL or a connection is: decided here, and nowhere else.

The answer is kombu's own: the ``driver_type`` of the transport kombu picks
(``redis`` also for ``rediss://`` and ``sentinel://``; ``amqp`` for
``amqp://``, ``amqps://`` and ``pyamqp://``).
"""

from __future__ import annotations

import enum
from typing import Any


class BrokerKind(str, enum.Enum):
    REDIS = "redis"
    AMQP = "amqp"
    OTHER = "other"

    @property
    def highest_priority_first(self) -> bool:
        """RabbitMQ delivers the highest priority number first; kombu's Redis the lowest."""
        return self is BrokerKind.AMQP


def broker_kind(broker: str | Any) -> BrokerKind:
    """The kind of a broker URL, or of a kombu ``Connection`` (no connection is made)."""
    if isinstance(broker, str):
        from kombu import Connection

        broker = Connection(broker)
    driver = broker.transport.driver_type
    try:
        return BrokerKind(driver)
    except ValueError:
        return BrokerKind.OTHER
