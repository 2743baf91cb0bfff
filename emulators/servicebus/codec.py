"""AMQP 1.0 message bytes: split, inspect, and rebuild them for the emulator.

This module owns every decision about message *encoding*; it does no I/O. It keeps
the sender's sections byte-for-byte (properties, application properties, body, footer)
so whatever the SDK sent round-trips exactly, and only rebuilds what a broker
changes: the header (delivery count) and the message annotations (sequence number,
enqueued time, lock expiry).

It uses python-qpid-proton's ``Data`` codec, with two of its sharp edges handled here:
``get_object()`` returns binary values as views into a buffer proton reuses, so every
decoded value is copied at once (``_own``); and proton's ``Message`` omits header
fields at their default values, so the header is encoded by hand with an explicit
``delivery-count`` (the SDK reads ``None`` otherwise).

The parts it reads and writes (section codes, ``ParsedMessage`` and its views) are
defined in ``sections`` and re-exported here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from proton import UNDESCRIBED, Array, Data, Described, Message, int32, symbol, timestamp

from .sections import (
    AMQP_SEQUENCE,
    AMQP_VALUE,
    APPLICATION_PROPERTIES,
    BATCH_MESSAGE_FORMAT,
    BODY_CODES,
    DATA,
    DELIVERY_ANNOTATIONS,
    FOOTER,
    HEADER,
    MESSAGE_ANNOTATIONS,
    PROPERTIES,
    Header,
    MalformedMessageError,
    ParsedMessage,
    Properties,
    Section,
)

__all__ = [
    "APPLICATION_PROPERTIES",
    "BATCH_MESSAGE_FORMAT",
    "DATA",
    "HEADER",
    "MESSAGE_ANNOTATIONS",
    "PROPERTIES",
    "Header",
    "MalformedMessageError",
    "ParsedMessage",
    "Properties",
    "Section",
    "encode_amqp_value_message",
    "encode_for_delivery",
    "long_array",
    "parse_message",
    "split_batch",
    "timestamp_array",
    "timestamp_ms",
    "to_plain",
]

# proton's own annotations say an Array descriptor must be AMQP data, but its marker for
# "no descriptor" is this Constant.
_UNDESCRIBED = cast(Any, UNDESCRIBED)

_SYMBOLIC_DESCRIPTORS = {
    "amqp:header:list": HEADER,
    "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    "amqp:properties:list": PROPERTIES,
    "amqp:application-properties:map": APPLICATION_PROPERTIES,
    "amqp:data:binary": DATA,
    "amqp:amqp-sequence:list": AMQP_SEQUENCE,
    "amqp:amqp-value:*": AMQP_VALUE,
    "amqp:footer:map": FOOTER,
}

_PROPERTY_FIELDS = (
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
)


def _own(value: Any) -> Any:
    """A deep copy of a decoded value that no longer points into proton's buffers."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {_own(k): _own(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_own(v) for v in value]
    if isinstance(value, Described):
        return Described(_own(value.descriptor), _own(value.value))
    if isinstance(value, Array):
        return Array(value.descriptor, value.type, *[_own(v) for v in value.elements])
    return value


def _decode_one(raw: bytes) -> tuple[int, Any, Any]:
    """Decode the first described value in ``raw``: (bytes consumed, descriptor, value)."""
    data = Data()
    try:
        consumed = data.decode(raw)
    except Exception as exc:  # proton raises DataException subclasses
        raise MalformedMessageError(f"undecodable AMQP value: {exc}") from exc
    data.rewind()
    if not data.next() or data.type() != Data.DESCRIBED:
        raise MalformedMessageError("a message section must be a described value")
    data.enter()
    data.next()
    descriptor = _own(data.get_object())
    data.next()
    value = _own(data.get_object())
    data.exit()
    return consumed, descriptor, value


def _section_code(descriptor: Any) -> int:
    if isinstance(descriptor, int):
        return int(descriptor)
    code = _SYMBOLIC_DESCRIPTORS.get(str(descriptor))
    if code is None:
        raise MalformedMessageError(f"unknown section descriptor {descriptor!r}")
    return code


def _split(raw: bytes) -> list[tuple[Section, Any]]:
    out: list[tuple[Section, Any]] = []
    pos = 0
    while pos < len(raw):
        consumed, descriptor, value = _decode_one(raw[pos:])
        if consumed <= 0:
            raise MalformedMessageError("empty AMQP value")
        out.append((Section(_section_code(descriptor), raw[pos : pos + consumed]), value))
        pos += consumed
    return out


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse an encoded AMQP message. Raises ``MalformedMessageError``."""
    raw = bytes(raw)
    parts = _split(raw)
    if not parts:
        raise MalformedMessageError("an empty message")
    header: Header | None = None
    annotations: Mapping[Any, Any] = {}
    properties = Properties()
    app_properties: Mapping[Any, Any] = {}
    body = bytearray()
    body_value: Any = None
    body_kind = "none"
    for section, value in parts:
        if section.code == HEADER:
            items = list(value or []) + [None] * 5
            header = Header(
                durable=items[0],
                priority=items[1],
                ttl_ms=items[2],
                first_acquirer=items[3],
                delivery_count=items[4],
            )
        elif section.code == MESSAGE_ANNOTATIONS:
            annotations = dict(value or {})
        elif section.code == PROPERTIES:
            items = list(value or []) + [None] * len(_PROPERTY_FIELDS)
            props = dict(zip(_PROPERTY_FIELDS, items, strict=False))
            for key in ("content_type", "content_encoding"):
                if props[key] is not None:
                    props[key] = str(props[key])  # symbols on the wire; plain str here
            properties = Properties(**props)
        elif section.code == APPLICATION_PROPERTIES:
            app_properties = dict(value or {})
        elif section.code == DATA:
            body_kind = "data"
            body.extend(value or b"")
        elif section.code == AMQP_VALUE:
            body_kind, body_value = "value", value
        elif section.code == AMQP_SEQUENCE:
            body_kind = "sequence"
            body_value = [*(body_value or []), value]
    return ParsedMessage(
        raw=raw,
        sections=tuple(section for section, _ in parts),
        header=header,
        message_annotations=annotations,
        properties=properties,
        application_properties=app_properties,
        body_bytes=bytes(body),
        body_value=body_value,
        body_kind=body_kind,
    )


def split_batch(message: ParsedMessage) -> list[ParsedMessage] | None:
    """The messages inside a batch transfer, or None if ``message`` is not a batch.

    A batch (message-format 0x80013700) is an envelope whose body is one data section
    per message, each holding a complete encoded message. proton hides the
    message-format, so the shape decides: no header and no application properties on
    the envelope, and every data section decodes fully as a message that starts with a
    message section. A single message whose body is itself an encoded AMQP message would
    be mistaken for a batch of one; nothing the SDK sends looks like that.
    """
    codes = [s.code for s in message.sections]
    if HEADER in codes or APPLICATION_PROPERTIES in codes or DATA not in codes:
        return None
    if any(code not in (DATA, PROPERTIES, MESSAGE_ANNOTATIONS) for code in codes):
        return None
    inner: list[ParsedMessage] = []
    for section in message.sections:
        if section.code != DATA:
            continue
        _, _, payload = _decode_one(section.raw)
        payload = bytes(payload or b"")
        if len(payload) < 3 or payload[0] != 0x00 or payload[1] not in (0x53, 0x80):
            return None
        try:
            parsed = parse_message(payload)
        except MalformedMessageError:
            return None
        if parsed.sections[0].code not in range(HEADER, FOOTER + 1):
            return None
        inner.append(parsed)
    return inner


def _encode_described(code: int, value: Any) -> bytes:
    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(code)
    data.put_object(value)
    data.exit()
    return data.encode()


def _encode_header(header: Header | None, delivery_count: int) -> bytes:
    header = header or Header()
    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(HEADER)
    data.put_list()
    data.enter()
    # Every field written explicitly: proton's Message would drop defaults, and the SDK
    # then reports delivery_count=None.
    data.put_bool(bool(header.durable))
    data.put_ubyte(4 if header.priority is None else int(header.priority))
    if header.ttl_ms is None:
        data.put_null()
    else:
        data.put_uint(int(header.ttl_ms))
    data.put_bool(delivery_count == 0)
    data.put_uint(delivery_count)
    data.exit()
    data.exit()
    return data.encode()


def encode_for_delivery(
    message: ParsedMessage,
    *,
    delivery_count: int,
    annotations: Mapping[str, Any],
    extra_application_properties: Mapping[str, Any] | None = None,
) -> bytes:
    """The bytes a broker sends a receiver: the stored message with a fresh header and
    broker annotations merged in; every other section exactly as the sender sent it.

    Delivery annotations are hop-by-hop and dropped, as a broker does.
    ``extra_application_properties`` (used for dead-letter reason/description) forces
    the application-properties section to be re-encoded.
    """
    merged: dict[Any, Any] = {
        key: value
        for key, value in message.message_annotations.items()
        if str(key) not in annotations
    }
    merged.update({symbol(key): value for key, value in annotations.items()})
    parts = [_encode_header(message.header, delivery_count)]
    wrote_annotations = False
    wrote_app_properties = False

    def annotations_section() -> bytes:
        return _encode_described(MESSAGE_ANNOTATIONS, merged)

    def app_properties_section() -> bytes:
        props: dict[Any, Any] = dict(message.application_properties)
        props.update(extra_application_properties or {})
        return _encode_described(APPLICATION_PROPERTIES, props)

    for section in message.sections:
        if section.code in (HEADER, DELIVERY_ANNOTATIONS):
            continue
        if section.code == MESSAGE_ANNOTATIONS:
            parts.append(annotations_section())
            wrote_annotations = True
            continue
        if not wrote_annotations:  # annotations precede properties and the body
            parts.append(annotations_section())
            wrote_annotations = True
        if section.code == APPLICATION_PROPERTIES and extra_application_properties:
            parts.append(app_properties_section())
            wrote_app_properties = True
            continue
        if (
            section.code in BODY_CODES | {FOOTER}
            and extra_application_properties
            and not wrote_app_properties
        ):
            parts.append(app_properties_section())
            wrote_app_properties = True
        parts.append(section.raw)
    if not wrote_annotations:
        parts.append(annotations_section())
    return b"".join(parts)


def timestamp_ms(epoch_seconds: float) -> timestamp:
    """An AMQP timestamp (milliseconds since the epoch)."""
    return timestamp(round(epoch_seconds * 1000))


def encode_amqp_value_message(
    *,
    body: Any,
    correlation_id: Any = None,
    application_properties: Mapping[str, Any] | None = None,
) -> bytes:
    """A request-response reply (CBS or management): amqp-value body, typed properties."""
    props: dict[str, Any] = {}
    for key, value in (application_properties or {}).items():
        # Service Bus sends status codes as AMQP int; proton would pick long for a bare int.
        props[key] = int32(value) if type(value) is int else value
    message = Message(body=body, correlation_id=correlation_id, properties=props)
    return bytes(message.encode())


def to_plain(value: Any) -> Any:
    """Proton-typed values turned into plain Python for inspection (str keys, ints, bytes)."""
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, Array):
        return [to_plain(v) for v in value.elements]
    if isinstance(value, Described):
        return Described(to_plain(value.descriptor), to_plain(value.value))
    if isinstance(value, uuid.UUID | bytes | bool | float | None):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    return value


def long_array(values: Sequence[int]) -> Array:
    """An AMQP array of longs (how Service Bus returns sequence numbers)."""
    return Array(_UNDESCRIBED, Data.LONG, *values)


def timestamp_array(epoch_seconds: Sequence[float]) -> Array:
    """An AMQP array of timestamps (how Service Bus returns lock expirations)."""
    return Array(_UNDESCRIBED, Data.TIMESTAMP, *[timestamp_ms(s) for s in epoch_seconds])
