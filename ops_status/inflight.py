"""What is in flight: the watches whose next read waits on the polls queue (``ops-status ls``).

Every running watch is exactly one follow-up on the polls queue, scheduled for its next
read (or already due and waiting for a worker). Browsing that queue therefore lists the
watches in flight without any state of our own. Browsing is Service Bus's *peek*: it
returns active, locked, deferred and, on a queue, scheduled messages, each with its
sequence number, state and scheduled enqueue time, and locks, settles, removes and counts
nothing ("Message browsing", https://learn.microsoft.com/azure/service-bus-messaging/message-browsing).
Peek needs the Listen right (Azure Service Bus Data Receiver) on the queue.

``in_flight_watch`` is pure: one browsed message to one ``InFlightWatch``, parsed with the
product's own parser (``parse_poll_message``: the polls queue is written only by
ops-status). A body that does not parse is listed as unreadable, with the reason, never
raised. ``browse_messages`` is the thin adapter that pages through the queue with
``ServiceBusReceiver.peek_messages``; ``WatchFilter`` selects what to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ops_status.errors import InvalidWatchRequestError, OpsStatusError
from ops_status.policy import PollPolicy
from ops_status.request import WatchRequest, parse_poll_message

__all__ = [
    "PEEK_BATCH",
    "BrowsedMessage",
    "Browser",
    "InFlightWatch",
    "WatchFilter",
    "browse_messages",
    "in_flight_watch",
]

#: How many messages one peek asks for (the SDK and Service Bus take any positive count).
PEEK_BATCH = 100


@dataclass(frozen=True)
class BrowsedMessage:
    """What a peek shows of one message, independent of the SDK's message class."""

    sequence_number: int
    body: bytes
    message_id: str | None = None
    state: str = "active"
    """``active``, ``scheduled`` or ``deferred`` (the SDK's ``ServiceBusMessageState``)."""
    scheduled_enqueue_time: datetime | None = None
    enqueued_time: datetime | None = None
    delivery_count: int | None = None

    @classmethod
    def from_sdk(cls, message: Any) -> BrowsedMessage:
        """From an ``azure.servicebus.ServiceBusReceivedMessage`` returned by a peek."""
        state = getattr(message.state, "name", message.state)
        return cls(
            sequence_number=int(message.sequence_number or 0),
            body=b"".join(message.body),
            message_id=None if message.message_id is None else str(message.message_id),
            state=str(state or "active").lower(),
            scheduled_enqueue_time=message.scheduled_enqueue_time_utc,
            enqueued_time=message.enqueued_time_utc,
            delivery_count=message.delivery_count,
        )


@dataclass(frozen=True)
class InFlightWatch:
    """One follow-up on the polls queue: the watch it carries, or why it is unreadable."""

    message: BrowsedMessage
    request: WatchRequest | None
    """The parsed follow-up; None when the body is not a valid poll message."""
    problem: str | None = None
    """Why the body did not parse (set exactly when ``request`` is None)."""

    @property
    def next_read_due(self) -> datetime | None:
        """When the follow-up becomes receivable; None when it already is (due now)."""
        if self.message.state != "scheduled":
            return None
        return self.message.scheduled_enqueue_time

    @property
    def operation(self) -> str | None:
        return self.request.target.operation_id if self.request else None

    @property
    def subscription_id(self) -> str | None:
        return self.request.target.subscription_id if self.request else None

    @property
    def last_status(self) -> str | None:
        state = self.request.state if self.request else None
        return state.last_status if state else None


@dataclass(frozen=True)
class WatchFilter:
    """Which watches to show. Every given field must match; an unreadable message matches
    only an empty filter (it has no fields to match on)."""

    correlation_id: str | None = None
    subscription_id: str | None = None
    """Compared case-insensitively (a GUID)."""
    status: str | None = None
    """ARM's last status, case-insensitively (ARM compares statuses that way)."""

    @property
    def empty(self) -> bool:
        return self.correlation_id is None and self.subscription_id is None and self.status is None

    def matches(self, watch: InFlightWatch) -> bool:
        if self.empty:
            return True
        if watch.request is None:
            return False
        if self.correlation_id is not None and watch.request.correlation_id != self.correlation_id:
            return False
        if (
            self.subscription_id is not None
            and (watch.subscription_id or "").lower() != self.subscription_id.lower()
        ):
            return False
        return self.status is None or (watch.last_status or "").lower() == self.status.lower()


def in_flight_watch(
    message: BrowsedMessage, *, arm_endpoint: str, policy: PollPolicy | None = None
) -> InFlightWatch:
    """The watch ``message`` carries, parsed as the worker would parse it. Never raises."""
    try:
        request = parse_poll_message(message.body, arm_endpoint=arm_endpoint, policy=policy)
    except InvalidWatchRequestError as exc:
        return InFlightWatch(message, None, "; ".join(exc.errors))
    return InFlightWatch(message, request)


class Browser(Protocol):
    """The one SDK call browsing makes (``ServiceBusReceiver.peek_messages``)."""

    def peek_messages(self, max_message_count: int = 1, *, sequence_number: int = 0) -> Any: ...


def browse_messages(
    receiver: Browser, *, batch: int = PEEK_BATCH, entity: str = "the queue"
) -> Iterator[BrowsedMessage]:
    """Every message on the receiver's entity, in sequence order, by paging with peek.

    Each page starts after the last sequence number seen, so a message is listed once
    even while workers take and schedule messages meanwhile. Peek changes nothing on the
    queue. Raises ``OpsStatusError`` when Service Bus cannot be read.
    """
    from azure.core.exceptions import AzureError

    next_number = 1  # Service Bus sequence numbers start at 1
    while True:
        try:
            page = receiver.peek_messages(max_message_count=batch, sequence_number=next_number)
        except (AzureError, OSError) as exc:
            raise OpsStatusError(f"browsing {entity} failed: {exc}") from exc
        if not page:
            return
        messages = [BrowsedMessage.from_sdk(m) for m in page]
        yield from messages
        next_number = max(m.sequence_number for m in messages) + 1
