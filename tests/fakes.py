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
from datetime import datetime

from ops_status.events import OutboundMessage
from ops_status.observation import Observation
from ops_status.request import WatchRequest


@dataclass
class RecordingOutputs:
    """Keeps what the handler sent; optionally fails the next sends."""

    scheduled: list[tuple[OutboundMessage, datetime]] = field(default_factory=list)
    events: list[OutboundMessage] = field(default_factory=list)
    fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def schedule_watch(self, message: OutboundMessage, enqueue_at: datetime | None) -> None:
        with self._lock:
            self._maybe_fail()
            self.scheduled.append((message, enqueue_at))

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
