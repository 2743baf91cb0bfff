"""The parts of an AMQP 1.0 message, as the emulator reads them.

This module owns the section descriptor codes and the typed, read-only views of a
parsed message (``Section``, ``Header``, ``Properties``, ``ParsedMessage``), shared by
``codec`` (which turns bytes into these and back) and ``broker`` (which only reads them).
No proton, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AMQP_SEQUENCE",
    "AMQP_VALUE",
    "APPLICATION_PROPERTIES",
    "BATCH_MESSAGE_FORMAT",
    "BODY_CODES",
    "DATA",
    "DELIVERY_ANNOTATIONS",
    "FOOTER",
    "HEADER",
    "MESSAGE_ANNOTATIONS",
    "PROPERTIES",
    "Header",
    "MalformedMessageError",
    "ParsedMessage",
    "Properties",
    "Section",
]

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78
BODY_CODES = frozenset({DATA, AMQP_SEQUENCE, AMQP_VALUE})

#: The message-format the SDK puts on a batched transfer (Microsoft's batch format).
#: proton does not expose message-format to a receiver, so batches are recognised from
#: their shape instead (see ``split_batch``); the constant is kept for documentation.
BATCH_MESSAGE_FORMAT = 0x80013700


class MalformedMessageError(ValueError):
    """The bytes are not a well-formed AMQP 1.0 message."""


@dataclass(frozen=True)
class Section:
    """One top-level message section: its descriptor code and its exact encoded bytes."""

    code: int
    raw: bytes


@dataclass(frozen=True)
class Header:
    durable: bool | None = None
    priority: int | None = None
    ttl_ms: int | None = None
    first_acquirer: bool | None = None
    delivery_count: int | None = None


@dataclass(frozen=True)
class Properties:
    message_id: Any = None
    user_id: bytes | None = None
    to: str | None = None
    subject: str | None = None
    reply_to: str | None = None
    correlation_id: Any = None
    content_type: str | None = None
    content_encoding: str | None = None
    absolute_expiry_time: int | None = None
    creation_time: int | None = None
    group_id: str | None = None
    group_sequence: int | None = None
    reply_to_group_id: str | None = None


@dataclass(frozen=True)
class ParsedMessage:
    """An incoming message: its original bytes plus the parts a broker needs to read."""

    raw: bytes
    sections: tuple[Section, ...]
    header: Header | None
    message_annotations: Mapping[Any, Any] = field(default_factory=dict)
    properties: Properties = field(default_factory=Properties)
    application_properties: Mapping[Any, Any] = field(default_factory=dict)
    #: concatenated data sections ("data" bodies), else b"".
    body_bytes: bytes = b""
    #: decoded amqp-value / amqp-sequence body, else None.
    body_value: Any = None
    body_kind: str = "none"

    def annotation(self, name: str) -> Any:
        """A message annotation by name, whether its key was sent as symbol or string."""
        for key, value in self.message_annotations.items():
            if str(key) == name:
                return value
        return None

    @property
    def scheduled_enqueue_time(self) -> float | None:
        """``x-opt-scheduled-enqueue-time`` as epoch seconds, if the sender set it."""
        value = self.annotation("x-opt-scheduled-enqueue-time")
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.timestamp()
        return int(value) / 1000.0
