"""InboundMessage: a read-only view of one received queue message, whoever hosts us.

The Functions trigger and the standalone worker receive different objects
(``azure.functions.ServiceBusMessage``, ``azure.servicebus.ServiceBusReceivedMessage``);
both become an ``InboundMessage`` here, so the handler sees one shape. This module also
owns the watch id: the identity of a submission, taken from what the *broker* says about
the intake message (its MessageId, sequence number and enqueued time), never from what
the body says. It reads the message's trace context (``Diagnostic-Id``/``traceparent``/
``tracestate`` application properties): at intake it is the pipeline's word and only
correlates; on the polls queue the app wrote it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from ops_status.traceparent import TraceContext, trace_context_from_properties

if TYPE_CHECKING:
    import azure.functions as func
    from azure.servicebus import ServiceBusReceivedMessage

__all__ = ["InboundMessage", "Queue"]


class Queue(str, Enum):
    """Which of the two queues a message came from: the trust boundary."""

    INTAKE = "intake"
    """Pipelines send here. Every message is a fresh submission; nothing in it is trusted."""
    POLLS = "polls"
    """Only the app's identity sends here: the follow-ups that carry the poll state."""


@dataclass(frozen=True)
class InboundMessage:
    """One received message. ``body_problem`` is set when the AMQP body is not a data
    section (a JMS text message arrives as an amqp-value string); ``body`` then holds a
    rendering of it, for the rejection event to echo."""

    queue: Queue
    body: bytes
    message_id: str | None = None
    sequence_number: int | None = None
    enqueued_time: datetime | None = None
    """The broker's enqueued time (aware, UTC)."""
    delivery_count: int | None = None
    """1 on the first delivery, as Service Bus and the Functions host count."""
    body_problem: str | None = None
    trace_context: TraceContext | None = None
    """The sender's trace context from the application properties, when valid."""

    @property
    def delivery_key(self) -> str:
        """A 32-hex-digit id of this message as the broker knows it: the same on every
        redelivery, different for every submission (a resubmission after the intake
        queue's duplicate-detection window gets a new sequence number and time).

        At intake it becomes the watch id; every id the watch's follow-ups and its
        terminal event carry derives from it.
        """
        if self.sequence_number is None:
            # Both hosts always give one; without it two submissions with one MessageId
            # would share a watch.
            raise ValueError("a received message has a sequence number")
        # Milliseconds since the epoch: the broker's precision, however a host renders it.
        enqueued = round(self.enqueued_time.timestamp() * 1000) if self.enqueued_time else ""
        material = f"{self.queue.value}|{self.message_id or ''}|{self.sequence_number}|{enqueued}"
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    @classmethod
    def from_functions(cls, message: func.ServiceBusMessage, queue: Queue) -> InboundMessage:
        """From the Functions trigger's binding (its body is always bytes)."""
        return cls(
            queue=queue,
            body=message.get_body(),
            message_id=_text_id(message.message_id),
            sequence_number=message.sequence_number,
            enqueued_time=_aware(message.enqueued_time_utc),
            delivery_count=message.delivery_count,
            trace_context=_trace_context(getattr(message, "application_properties", None)),
        )

    @classmethod
    def from_sdk(cls, message: ServiceBusReceivedMessage, queue: Queue) -> InboundMessage:
        """From an azure-servicebus receiver (the standalone worker)."""
        from azure.servicebus.amqp import AmqpMessageBodyType

        body_type = message.body_type
        problem = None
        if body_type == AmqpMessageBodyType.DATA:
            body = b"".join(message.body)
        else:
            kind = "amqp-value" if body_type == AmqpMessageBodyType.VALUE else "amqp-sequence"
            value: Any = message.body
            if body_type == AmqpMessageBodyType.SEQUENCE:
                value = list(value)
            body = _render(value)
            problem = (
                f"body is an AMQP {kind} section ({type(value).__name__}), not a data "
                "section: send the JSON as bytes (with JMS, a BytesMessage)"
            )
        # The AMQP header counts *prior* attempts (0 on the first delivery) and
        # azure-servicebus for Python passes it through; Service Bus, the .NET SDK and so the
        # Functions host count from 1 (the .NET SDK adds 1: azure-service-bus-dotnet
        # AmqpMessageConverter; the same fix in azure-sdk-for-java #11845).
        raw_count = message.delivery_count
        return cls(
            queue=queue,
            body=body,
            message_id=_text_id(message.message_id),
            sequence_number=message.sequence_number,
            enqueued_time=_aware(message.enqueued_time_utc),
            delivery_count=None if raw_count is None else raw_count + 1,
            body_problem=problem,
            trace_context=_trace_context(message.application_properties),
        )


def _trace_context(properties: object) -> TraceContext | None:
    """Never raises: a garbled property costs the correlation, never the message."""
    if not isinstance(properties, dict):
        return None
    return trace_context_from_properties(properties)


def _text_id(value: object) -> str | None:
    """AMQP lets a MessageId be a UUID, an integer or binary, and the Python SDK passes it
    through as such: the product only ever needs (and echoes) its text."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.hex()
    return str(value)[:128]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # the bindings give naive UTC
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _render(value: Any) -> bytes:
    """A faithful text of a non-data body for the rejection's ``rawBody``: a string as it
    is, anything else as JSON with keys and values kept (bytes decoded, others repr'd)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    if isinstance(value, bytes):
        return value

    def default(item: Any) -> Any:
        if isinstance(item, bytes):
            return item.decode("utf-8", "replace")
        return repr(item)

    def keys(item: Any) -> Any:
        if isinstance(item, dict):
            return {default(k) if not isinstance(k, str) else k: keys(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [keys(v) for v in item]
        return item

    try:
        text = json.dumps(keys(value), default=default, ensure_ascii=False)
        return text.encode("utf-8", "replace")
    except (TypeError, ValueError, RecursionError):
        return repr(value).encode("utf-8", "replace")
