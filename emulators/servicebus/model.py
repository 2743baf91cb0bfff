"""The values the broker keeps and hands out: stored messages, deliveries, snapshots.

This module owns ``Clock`` (wall time plus an offset tests advance), ``MessageState``,
``Stored`` (a message as an entity holds it: sequence number, lock, delivery count,
dead-letter reason), ``Delivered`` (what the AMQP glue sends for one delivery or one
management reply) and ``MessageView`` (a read-only snapshot for tests and tools).
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .codec import ParsedMessage, to_plain

__all__ = ["Clock", "Delivered", "MessageState", "MessageView", "Stored"]


class Clock:
    """Wall-clock time plus an offset tests can advance (virtual time)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._wall() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds


class MessageState(str, enum.Enum):
    ACTIVE = "active"
    DEFERRED = "deferred"
    SCHEDULED = "scheduled"

    @property
    def wire_value(self) -> int:
        """``x-opt-message-state`` as the SDK's ``ServiceBusMessageState`` reads it."""
        return {"active": 0, "deferred": 1, "scheduled": 2}[self.value]


@dataclass
class Stored:
    message: ParsedMessage
    sequence_number: int
    enqueued_time: float
    scheduled_time: float | None = None
    state: MessageState = MessageState.ACTIVE
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float | None = None
    expires_at: float | None = None
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None


@dataclass(frozen=True)
class Delivered:
    """A message handed to the glue for one delivery or one peek/management reply."""

    message: ParsedMessage
    sequence_number: int
    enqueued_time: float
    delivery_count: int
    state: MessageState
    lock_token: uuid.UUID | None
    locked_until: float | None
    scheduled_time: float | None
    dead_letter_reason: str | None
    dead_letter_error_description: str | None

    @classmethod
    def of(cls, stored: Stored) -> Delivered:
        return cls(
            message=stored.message,
            sequence_number=stored.sequence_number,
            enqueued_time=stored.enqueued_time,
            delivery_count=stored.delivery_count,
            state=stored.state,
            lock_token=stored.lock_token,
            locked_until=stored.locked_until,
            scheduled_time=stored.scheduled_time,
            dead_letter_reason=stored.dead_letter_reason,
            dead_letter_error_description=stored.dead_letter_error_description,
        )


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


@dataclass(frozen=True)
class MessageView:
    """A read-only snapshot of a stored message, for tests and tools. Times are UTC on
    the broker's (possibly advanced) clock."""

    sequence_number: int
    body: bytes
    body_value: Any
    message_id: Any
    correlation_id: Any
    subject: str | None
    content_type: str | None
    to: str | None
    reply_to: str | None
    session_id: str | None
    application_properties: Mapping[str, Any]
    time_to_live: float | None
    enqueued_time: dt.datetime | None
    scheduled_enqueue_time: dt.datetime | None
    delivery_count: int
    state: MessageState
    locked_until: dt.datetime | None
    lock_token: uuid.UUID | None
    dead_letter_reason: str | None
    dead_letter_error_description: str | None
    raw: bytes

    @property
    def text(self) -> str:
        """The data body decoded as UTF-8."""
        return self.body.decode("utf-8")

    @property
    def is_locked(self) -> bool:
        return self.lock_token is not None

    @classmethod
    def of(cls, stored: Stored) -> MessageView:
        m = stored.message
        ttl = m.header.ttl_ms if m.header is not None else None
        return cls(
            sequence_number=stored.sequence_number,
            body=m.body_bytes,
            body_value=to_plain(m.body_value),
            message_id=to_plain(m.properties.message_id),
            correlation_id=to_plain(m.properties.correlation_id),
            subject=m.properties.subject,
            content_type=m.properties.content_type,
            to=m.properties.to,
            reply_to=m.properties.reply_to,
            session_id=m.properties.group_id,
            application_properties=to_plain(dict(m.application_properties)),
            time_to_live=None if ttl is None else ttl / 1000.0,
            enqueued_time=None
            if stored.state is MessageState.SCHEDULED
            else _utc(stored.enqueued_time),
            scheduled_enqueue_time=_utc(stored.scheduled_time),
            delivery_count=stored.delivery_count,
            state=stored.state,
            locked_until=_utc(stored.locked_until),
            lock_token=stored.lock_token,
            dead_letter_reason=stored.dead_letter_reason,
            dead_letter_error_description=stored.dead_letter_error_description,
            raw=m.raw,
        )
