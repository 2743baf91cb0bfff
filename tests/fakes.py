"""In-memory fakes of the handler's two ports, for unit tests of the shell.

They stand in for our own interfaces (``StatusReader``, ``Outputs``), never for a
protocol: ARM and Service Bus themselves are exercised against real local peers in
tests/integration and tests/e2e.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ops_status.events import OutboundMessage
from ops_status.inbound import InboundMessage, Queue
from ops_status.observation import Observation
from ops_status.request import WatchRequest


@dataclass
class RecordingOutputs:
    """Keeps what the handler sent; optionally fails the next sends."""

    scheduled: list[tuple[OutboundMessage, datetime]] = field(default_factory=list)
    events: list[OutboundMessage] = field(default_factory=list)
    submitted: list[OutboundMessage] = field(default_factory=list)
    fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def schedule_poll(self, message: OutboundMessage, enqueue_at: datetime) -> None:
        with self._lock:
            self._maybe_fail()
            self.scheduled.append((message, enqueue_at))

    def submit(self, message: OutboundMessage) -> None:
        with self._lock:
            self._maybe_fail()
            self.submitted.append(message)

    def send_event(self, message: OutboundMessage) -> None:
        with self._lock:
            self._maybe_fail()
            self.events.append(message)

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            from ops_status.errors import ServiceBusSendError

            raise ServiceBusSendError("injected send failure")


class ScriptedStatusReader:
    """Answers status reads from a fixed list of observations (the last one repeats)."""

    def __init__(self, observations: Iterable[Observation]) -> None:
        self._observations = deque(observations)
        self.requests: list[WatchRequest] = []

    def get_operation_status(self, request: WatchRequest) -> Observation:
        self.requests.append(request)
        if len(self._observations) > 1:
            return self._observations.popleft()
        return self._observations[0]


# -- received messages, as a host hands them over --------------------------------------

ENQUEUED = datetime(2026, 11, 28, 11, 59, 58, tzinfo=timezone.utc)


def intake_message(
    body: bytes,
    *,
    message_id: str = "submission-1",
    sequence_number: int = 1,
    enqueued_time: datetime | None = ENQUEUED,
    delivery_count: int = 1,
) -> InboundMessage:
    """A pipeline's submission as the intake trigger receives it."""
    return InboundMessage(
        queue=Queue.INTAKE,
        body=body,
        message_id=message_id,
        sequence_number=sequence_number,
        enqueued_time=enqueued_time,
        delivery_count=delivery_count,
    )


def poll_message(
    outbound: OutboundMessage, *, sequence_number: int = 100, delivery_count: int = 1
) -> InboundMessage:
    """A follow-up the handler scheduled, as the polls trigger receives it."""
    return InboundMessage(
        queue=Queue.POLLS,
        body=outbound.body,
        message_id=outbound.message_id,
        sequence_number=sequence_number,
        enqueued_time=ENQUEUED,
        delivery_count=delivery_count,
    )
