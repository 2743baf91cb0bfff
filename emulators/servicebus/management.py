"""Service Bus request-response operations (``<entity>/$management``) and message rendering.

This module owns the *meaning* of management requests: it maps an operation name and
its decoded body onto ``Broker`` calls and builds the reply (status code, description,
error condition, body). It also renders a broker ``Delivered`` into the bytes a client
receives, shared by link deliveries and by peek / receive-by-sequence-number replies.
It does no I/O; ``amqp.py`` carries requests and replies over the links.

Wire facts (azure-servicebus 7.15's ``_common/constants.py`` and ``mgmt_handlers.py``):
request application properties ``operation`` (e.g. ``com.microsoft:renew-lock``),
body an AMQP map with string keys; reply application properties ``statusCode`` (int),
``statusDescription`` and, on failure, ``errorCondition`` (a symbol the SDK maps to an
exception: ``com.microsoft:message-lock-lost`` -> ``MessageLockLostError``, and so on).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from proton import symbol

from .broker import Broker, BrokerError, Delivered, MessageState
from .codec import (
    MalformedMessageError,
    encode_for_delivery,
    long_array,
    parse_message,
    timestamp_array,
    timestamp_ms,
)
from .config import LISTEN, SEND

__all__ = ["REQUIRED_RIGHT", "Reply", "encode_delivered", "handle_management_request"]

_LOG = logging.getLogger(__name__)

SCHEDULE = "com.microsoft:schedule-message"
CANCEL_SCHEDULED = "com.microsoft:cancel-scheduled-message"
RENEW_LOCK = "com.microsoft:renew-lock"
PEEK = "com.microsoft:peek-message"
RECEIVE_BY_SEQUENCE_NUMBER = "com.microsoft:receive-by-sequence-number"
UPDATE_DISPOSITION = "com.microsoft:update-disposition"

#: The claim each operation needs on its entity, as in Service Bus's rights table
#: (service-bus-sas.md): sending and scheduling need Send; receiving, peeking, lock
#: renewal and settlement need Listen.
REQUIRED_RIGHT: Mapping[str, str] = {
    SCHEDULE: SEND,
    CANCEL_SCHEDULED: SEND,
    RENEW_LOCK: LISTEN,
    PEEK: LISTEN,
    RECEIVE_BY_SEQUENCE_NUMBER: LISTEN,
    UPDATE_DISPOSITION: LISTEN,
}

#: The SDK's ``MESSAGE_MGMT_SETTLEMENT_TERM_MAP`` values (``defered`` is its spelling).
_DISPOSITIONS = {"completed", "abandoned", "defered", "suspended"}


@dataclass(frozen=True)
class Reply:
    status_code: int
    description: str
    body: Any = None
    error_condition: str | None = None

    @classmethod
    def error(cls, exc: BrokerError) -> Reply:
        return cls(exc.status_code, exc.description, None, exc.condition)

    def application_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "statusCode": self.status_code,
            "statusDescription": self.description,
        }
        if self.error_condition:
            props["errorCondition"] = symbol(self.error_condition)
        return props


def encode_delivered(delivered: Delivered) -> bytes:
    """The message as a receiver (or a peek/deferred reply) gets it."""
    annotations: dict[str, Any] = {
        "x-opt-sequence-number": delivered.sequence_number,
        "x-opt-enqueued-time": timestamp_ms(delivered.enqueued_time),
    }
    if delivered.state is not MessageState.ACTIVE:
        annotations["x-opt-message-state"] = delivered.state.wire_value
    if delivered.locked_until is not None:
        annotations["x-opt-locked-until"] = timestamp_ms(delivered.locked_until)
    extra: dict[str, Any] = {}
    # The SDK reads dead_letter_reason / dead_letter_error_description from these
    # application properties (PROPERTIES_DEAD_LETTER_REASON and friends).
    if delivered.dead_letter_reason is not None:
        extra["DeadLetterReason"] = delivered.dead_letter_reason
    if delivered.dead_letter_error_description is not None:
        extra["DeadLetterErrorDescription"] = delivered.dead_letter_error_description
    return encode_for_delivery(
        delivered.message,
        delivery_count=delivered.delivery_count,
        annotations=annotations,
        extra_application_properties=extra or None,
    )


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, Mapping):
        return None
    for key, value in body.items():
        if str(key) == name:
            return value
    return None


def _items(value: Any) -> list[Any]:
    """Elements of an AMQP array or list (the SDK sends arrays, tolerate lists)."""
    if value is None:
        return []
    elements = getattr(value, "elements", None)
    if elements is not None:
        return list(elements)
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _token(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def handle_management_request(
    broker: Broker,
    entity: str,
    operation: str,
    body: Any,
    authorize: Callable[[str], None] | None = None,
) -> Reply:
    """Run one management operation against ``entity`` and build its reply.

    ``authorize(right)`` is called with the claim the operation needs (``REQUIRED_RIGHT``)
    before anything happens; it raises a ``BrokerError`` (401, unauthorized-access) to
    refuse.
    """
    handler = _OPERATIONS.get(operation)
    if handler is None:
        return Reply(
            501,
            f"The operation '{operation}' is not supported by the emulator.",
            None,
            "amqp:not-implemented",
        )
    try:
        if authorize is not None:
            authorize(REQUIRED_RIGHT[operation])
        return handler(broker, entity, body)
    except BrokerError as exc:
        return Reply.error(exc)
    except (MalformedMessageError, ValueError, TypeError) as exc:
        _LOG.info("bad %s request on %s: %s", operation, entity, exc)
        return Reply(400, f"Bad request: {exc}", None, "com.microsoft:argument-error")


def _schedule(broker: Broker, entity: str, body: Any) -> Reply:
    limit = broker.max_message_size(entity)
    parsed = []
    for item in _items(_field(body, "messages")):
        raw = bytes(_field(item, "message") or b"")
        if len(raw) > limit:
            return Reply(
                413,
                f"The message ({len(raw)} bytes) exceeds the limit ({limit} bytes).",
                None,
                "amqp:link:message-size-exceeded",
            )
        parsed.append(parse_message(raw))
    numbers = broker.send(entity, parsed)
    return Reply(200, "OK", {"sequence-numbers": long_array(numbers)})


def _cancel_scheduled(broker: Broker, entity: str, body: Any) -> Reply:
    broker.cancel_scheduled(entity, [int(n) for n in _items(_field(body, "sequence-numbers"))])
    return Reply(200, "OK", {})


def _renew_lock(broker: Broker, entity: str, body: Any) -> Reply:
    expirations = [broker.renew_lock(_token(t)) for t in _items(_field(body, "lock-tokens"))]
    return Reply(200, "OK", {"expirations": timestamp_array(expirations)})


def _peek(broker: Broker, entity: str, body: Any) -> Reply:
    start = int(_field(body, "from-sequence-number") or 1)
    count = int(_field(body, "message-count") or 1)
    found = broker.peek(entity, start, count)
    if not found:
        return Reply(204, "No messages to peek.", None)
    # A peek is a disconnected snapshot: Service Bus does not show a peeked message's lock
    # ("Message browsing": the lock state can't be observed on peeked messages), and the
    # SDK would otherwise report ``locked_until_utc`` from x-opt-locked-until.
    snapshots = [replace(d, locked_until=None, lock_token=None) for d in found]
    return Reply(200, "OK", {"messages": [{"message": encode_delivered(d)} for d in snapshots]})


def _receive_by_sequence_number(broker: Broker, entity: str, body: Any) -> Reply:
    numbers = [int(n) for n in _items(_field(body, "sequence-numbers"))]
    # receiver-settle-mode: 0 = first (ReceiveAndDelete), 1 = second (PeekLock).
    peek_lock = int(_field(body, "receiver-settle-mode") or 0) == 1
    found = broker.receive_deferred(entity, numbers, peek_lock=peek_lock)
    messages: list[dict[str, Any]] = []
    for delivered in found:
        item: dict[str, Any] = {"message": encode_delivered(delivered)}
        if delivered.lock_token is not None:
            item["lock-token"] = delivered.lock_token
        messages.append(item)
    return Reply(200, "OK", {"messages": messages})


def _update_disposition(broker: Broker, entity: str, body: Any) -> Reply:
    status = str(_field(body, "disposition-status") or "")
    if status not in _DISPOSITIONS:
        return Reply(400, f"Unknown disposition-status {status!r}.", None, "amqp:invalid-field")
    for raw_token in _items(_field(body, "lock-tokens")):
        token = _token(raw_token)
        if status == "completed":
            broker.complete(token)
        elif status == "abandoned":
            broker.abandon(token)
        elif status == "defered":
            broker.defer(token)
        else:
            reason = _field(body, "deadletter-reason")
            description = _field(body, "deadletter-description")
            broker.dead_letter(
                token,
                None if reason is None else str(reason),
                None if description is None else str(description),
            )
    return Reply(200, "OK", {})


_OPERATIONS: dict[str, Callable[[Broker, str, Any], Reply]] = {
    SCHEDULE: _schedule,
    CANCEL_SCHEDULED: _cancel_scheduled,
    RENEW_LOCK: _renew_lock,
    PEEK: _peek,
    RECEIVE_BY_SEQUENCE_NUMBER: _receive_by_sequence_number,
    UPDATE_DISPOSITION: _update_disposition,
}
