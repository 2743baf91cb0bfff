"""Listening to the events topic: the subscriber side, and a pipeline's blocking gate.

``listen_for_events`` reads events from an ``EventSource`` and hands each to a callback
until one matches an ``EventFilter`` (a gate), ``max_events`` were seen, or the time is
up. Two sources, because reading must not steal other readers' events:

- ``BrowsingSource`` (the default) *peeks*: nothing settled, no delivery counted, nothing
  removed. Pointed at a subscription that other pipelines' gates also read, it cannot take
  their events, abandon them into the dead-letter queue or hide them behind a lock; a
  re-run gate finds the same event again. It starts at the oldest message still in the
  subscription, so an event published before the gate started is found too.
- ``ConsumingSource`` receives in PeekLock and *completes* every event after the callback
  has seen it: for a subscription this reader owns alone (a consumer, not a gate).

Peek-lock-and-abandon is deliberately absent: every abandon counts a delivery, so a gate
abandoning other pipelines' events in a receive loop would dead-letter them after
MaxDeliveryCount (10) redeliveries within seconds, and holding them locked instead would
delay them for every other reader.

Errors from azure-servicebus are translated into ``EventReceiveError``. Each event's
trace id is read from its CloudEvents ``traceparent`` extension (``ReceivedEvent.trace``),
falling back to the message's ``traceparent``/``Diagnostic-Id`` application properties.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver

from ops_status.errors import EventReceiveError
from ops_status.jsontext import json_object
from ops_status.traceparent import TraceContext, parse_trace_context, trace_context_from_properties

__all__ = [
    "BrowsingSource",
    "ConsumingSource",
    "EventFilter",
    "EventReceiveError",
    "EventSource",
    "ListenResult",
    "ReceivedEvent",
    "listen_for_events",
    "open_subscription",
]

# How many messages one peek asks for.
_BATCH = 50


@dataclass(frozen=True)
class ReceivedEvent:
    """One message from the events topic, with its body parsed when it is a JSON object."""

    body: bytes
    event: Mapping[str, Any] | None
    """The CloudEvent, or None when the body is not a JSON object."""
    message_id: str | None = None
    correlation_id: str | None = None
    sequence_number: int | None = None
    enqueued_time: datetime | None = None
    handle: Any = field(default=None, repr=False, compare=False)
    """The SDK message, for settlement by the source that produced it."""
    message_trace: TraceContext | None = None
    """The trace context of the message's application properties."""

    @property
    def data(self) -> Mapping[str, Any]:
        data = self.event.get("data") if self.event is not None else None
        return data if isinstance(data, Mapping) else {}

    @property
    def type(self) -> str | None:
        value = self.event.get("type") if self.event is not None else None
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str | None:
        value = self.data.get("status")
        return value if isinstance(value, str) else None

    @property
    def operation_id(self) -> str | None:
        value = self.data.get("operationId")
        return value if isinstance(value, str) else None

    @property
    def submission_id(self) -> str | None:
        value = self.data.get("submissionId")
        return value if isinstance(value, str) else None

    @property
    def trace(self) -> TraceContext | None:
        """The event's trace: its ``traceparent``/``tracestate`` extension attributes, else
        the message's properties (an invalid value counts as none)."""
        if self.event is not None:
            context = parse_trace_context(
                self.event.get("traceparent"), self.event.get("tracestate")
            )
            if context is not None:
                return context
        return self.message_trace

    @property
    def event_correlation_id(self) -> str | None:
        """The watch's correlationId: from the event, else the message's CorrelationId."""
        value = self.data.get("correlationId")
        return value if isinstance(value, str) else self.correlation_id

    @classmethod
    def from_message(cls, message: ServiceBusReceivedMessage) -> ReceivedEvent:
        body = b"".join(message.body)
        return cls(
            body=body,
            event=json_object(body),
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            sequence_number=message.sequence_number,
            enqueued_time=message.enqueued_time_utc,
            handle=message,
            message_trace=trace_context_from_properties(
                getattr(message, "application_properties", None) or {}
            ),
        )


@dataclass(frozen=True)
class EventFilter:
    """Which event a gate waits for. Every given field must match; none given matches all.

    ``operation_id`` is compared case-insensitively (ids are GUID-like; ARM's case varies),
    ``correlation_id`` and ``submission_id`` (the MessageId ``submit`` printed) exactly.
    """

    operation_id: str | None = None
    correlation_id: str | None = None
    submission_id: str | None = None

    def matches(self, event: ReceivedEvent) -> bool:
        if event.event is None:
            return False
        if self.operation_id is not None:
            found = event.operation_id
            if found is None or found.casefold() != self.operation_id.casefold():
                return False
        if self.submission_id is not None and event.submission_id != self.submission_id:
            return False
        return self.correlation_id is None or event.event_correlation_id == self.correlation_id

    def __str__(self) -> str:
        parts = [
            f"operationId={self.operation_id}" if self.operation_id is not None else "",
            f"correlationId={self.correlation_id}" if self.correlation_id is not None else "",
            f"submissionId={self.submission_id}" if self.submission_id is not None else "",
        ]
        return " ".join(p for p in parts if p) or "any event"


class EventSource(Protocol):
    """Where events come from. Tests pass an in-memory list."""

    def receive(self, max_wait: float) -> list[ReceivedEvent]:
        """The next events, waiting at most ``max_wait`` seconds for one."""

    def settle(self, event: ReceivedEvent) -> None:
        """Called once the callback has seen ``event``."""


class BrowsingSource:
    """Peeks a subscription from its oldest message on, never settling or removing one.

    Example::

        with client.get_subscription_receiver("ops-status-events", "gate-4711") as receiver:
            result = listen_for_events(BrowsingSource(receiver), until=EventFilter(...))
    """

    def __init__(
        self,
        receiver: ServiceBusReceiver,
        *,
        poll_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._receiver = receiver
        self._poll_interval = poll_interval
        self._sleep = sleep
        self._next = 1  # Service Bus sequence numbers start at 1

    def receive(self, max_wait: float) -> list[ReceivedEvent]:
        try:
            messages = self._receiver.peek_messages(
                max_message_count=_BATCH, sequence_number=self._next
            )
        except (AzureError, OSError) as exc:
            raise EventReceiveError(f"peeking {_entity(self._receiver)} failed: {exc}") from exc
        if not messages:
            # Peek does not wait for new messages: look again shortly.
            self._sleep(max(min(self._poll_interval, max_wait), 0.0))
            return []
        self._next = max(m.sequence_number or 0 for m in messages) + 1
        return [ReceivedEvent.from_message(m) for m in messages]

    def settle(self, event: ReceivedEvent) -> None:
        """Nothing to settle: a peeked message stays where it is."""


class ConsumingSource:
    """Receives in PeekLock and completes each event once it has been handled.

    Only for a subscription this reader owns alone: it takes every event it receives.
    """

    def __init__(self, receiver: ServiceBusReceiver) -> None:
        self._receiver = receiver

    def receive(self, max_wait: float) -> list[ReceivedEvent]:
        try:
            # One at a time: a message received but not yet handed on when listening
            # stops would stay locked, and count a delivery, until its lock expired.
            messages = self._receiver.receive_messages(
                max_message_count=1, max_wait_time=max(max_wait, 0.1)
            )
        except (AzureError, OSError) as exc:
            raise EventReceiveError(
                f"receiving from {_entity(self._receiver)} failed: {exc}"
            ) from exc
        return [ReceivedEvent.from_message(m) for m in messages]

    def settle(self, event: ReceivedEvent) -> None:
        try:
            self._receiver.complete_message(event.handle)
        except (AzureError, OSError, ValueError) as exc:
            # The lock was lost: Service Bus redelivers the event; it will be seen again.
            raise EventReceiveError(
                f"completing {event.message_id} on {_entity(self._receiver)} failed: {exc}"
            ) from exc


@dataclass(frozen=True)
class ListenResult:
    """How listening ended: the awaited event, or why there is none."""

    matched: ReceivedEvent | None
    seen: int
    timed_out: bool


@contextlib.contextmanager
def open_subscription(
    client: ServiceBusClient, topic: str, subscription: str
) -> Iterator[ServiceBusReceiver]:
    """An open PeekLock receiver on ``topic/subscription`` without prefetch, closed on exit.

    Opening connects and authenticates at once, so an unreachable namespace or a refused
    credential fails here, as ``EventReceiveError``. (Service Bus accepts the link to a
    missing subscription and detaches it right after; that surfaces from the first
    ``receive``.) The SDK's receive link asks for one message and, when no receive call is
    waiting, releases it at once: no lock is kept and no delivery is counted.
    """
    with contextlib.ExitStack() as stack:
        try:
            receiver = stack.enter_context(
                client.get_subscription_receiver(topic, subscription, prefetch_count=0)
            )
        except (AzureError, OSError, ValueError) as exc:
            raise EventReceiveError(f"cannot read {topic}/{subscription}: {exc}") from exc
        yield receiver


def listen_for_events(
    source: EventSource,
    *,
    on_event: Callable[[ReceivedEvent, bool], None],
    until: EventFilter | None = None,
    timeout: float | None = None,
    max_events: int | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    max_wait: float = 1.0,
) -> ListenResult:
    """Hand events to ``on_event(event, matched)`` until one matches ``until``.

    Without ``until`` every event is handed on and listening ends after ``max_events``
    events or ``timeout`` seconds (or never). With ``until``, it ends at the first
    matching event (``matched``) or at ``timeout`` (``timed_out``). Every event is settled
    by the source after ``on_event`` returns. Raises ``EventReceiveError``.
    """
    deadline = None if timeout is None else monotonic() + timeout
    seen = 0
    while True:
        remaining = max_wait if deadline is None else min(max_wait, deadline - monotonic())
        if remaining <= 0:
            return ListenResult(None, seen, timed_out=True)
        for event in source.receive(remaining):
            matched = until is not None and until.matches(event)
            on_event(event, matched)
            source.settle(event)
            seen += 1
            if matched:
                return ListenResult(event, seen, timed_out=False)
            if until is None and max_events is not None and seen >= max_events:
                return ListenResult(None, seen, timed_out=False)


def _entity(receiver: ServiceBusReceiver) -> str:
    return str(getattr(receiver, "entity_path", "the subscription"))
