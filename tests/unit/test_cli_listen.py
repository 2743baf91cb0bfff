"""Listening: which event ends a gate, when listening stops, and that browsing steals nothing.

``listen_for_events`` runs over an in-memory ``EventSource``; ``BrowsingSource`` over a
fake of the one SDK call it makes (``peek_messages``). The real SDK against the AMQP
emulator is in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from ops_status.cli import output
from ops_status.listen import (
    BrowsingSource,
    EventFilter,
    EventReceiveError,
    ListenResult,
    ReceivedEvent,
    listen_for_events,
)


def event(
    status: str = "Succeeded",
    *,
    operation_id: str | None = "op-1",
    correlation_id: str | None = "run-1",
    sequence_number: int | None = None,
    submission_id: str | None = "sub-1",
) -> ReceivedEvent:
    document = {
        "specversion": "1.0",
        "type": f"OpsStatus.Operation.{status}",
        "time": "2025-07-01T09:00:00.000Z",
        "data": {
            "status": status,
            "operationId": operation_id,
            "correlationId": correlation_id,
            "submissionId": submission_id,
        },
    }
    body = json.dumps(document).encode()
    return ReceivedEvent(body, document, sequence_number=sequence_number)


class ListSource:
    """Hands out batches in order, then nothing; records what was settled."""

    def __init__(self, *batches: Iterable[ReceivedEvent]) -> None:
        self.batches = deque(list(b) for b in batches)
        self.settled: list[ReceivedEvent] = []
        self.waits: list[float] = []

    def receive(self, max_wait: float) -> list[ReceivedEvent]:
        self.waits.append(max_wait)
        return self.batches.popleft() if self.batches else []

    def settle(self, event: ReceivedEvent) -> None:
        self.settled.append(event)


class Ticking:
    """A monotonic clock that advances by ``step`` on every read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_gate_ends_at_the_first_matching_event_and_hands_on_every_event_it_saw() -> None:
    other, mine, later = event(correlation_id="run-2"), event("Failed"), event()
    source = ListSource([other], [mine, later])
    seen: list[tuple[ReceivedEvent, bool]] = []

    result = listen_for_events(
        source,
        on_event=lambda e, matched: seen.append((e, matched)),
        until=EventFilter(correlation_id="run-1"),
    )

    assert result == ListenResult(mine, seen=2, timed_out=False)
    assert seen == [(other, False), (mine, True)]
    assert source.settled == [other, mine]  # settled after being handed on; `later` untouched


def test_a_gate_times_out_when_its_event_never_comes() -> None:
    result = listen_for_events(
        ListSource([event(correlation_id="run-2")]),
        on_event=lambda e, m: None,
        until=EventFilter(correlation_id="run-1"),
        timeout=10,
        monotonic=Ticking(0.5),
    )

    assert result == ListenResult(None, seen=1, timed_out=True)


def test_waits_never_run_past_the_timeout() -> None:
    source = ListSource()

    listen_for_events(
        source, on_event=lambda e, m: None, timeout=2.5, monotonic=Ticking(0.25), max_wait=1.0
    )

    assert source.waits
    assert max(source.waits) <= 1.0


def test_without_a_filter_every_event_is_handed_on_until_max_events() -> None:
    events = [event(operation_id=f"op-{n}") for n in range(5)]
    seen: list[ReceivedEvent] = []

    result = listen_for_events(
        ListSource(events[:2], events[2:]), on_event=lambda e, m: seen.append(e), max_events=3
    )

    assert result == ListenResult(None, seen=3, timed_out=False)
    assert seen == events[:3]


@pytest.mark.parametrize(
    ("until", "candidate", "matches"),
    [
        (EventFilter(operation_id="OP-1"), event(operation_id="op-1"), True),
        (EventFilter(operation_id="op-1"), event(operation_id="op-10"), False),
        (EventFilter(correlation_id="run-1"), event(correlation_id="RUN-1"), False),
        (EventFilter("op-1", "run-1"), event(operation_id="op-1", correlation_id="run-2"), False),
        (EventFilter("op-1", "run-1"), event(), True),
        (EventFilter(operation_id="op-1"), ReceivedEvent(b"not json", None), False),
        # A rejected request has no operation id, but its correlation id is recovered.
        (EventFilter(correlation_id="run-1"), event("Rejected", operation_id=None), True),
        (EventFilter(operation_id="op-1"), event("Rejected", operation_id=None), False),
        # A resubmission of the same operation and correlation id is told apart by its id.
        (EventFilter(submission_id="sub-1"), event(), True),
        (EventFilter(submission_id="sub-1"), event(submission_id="sub-2"), False),
        (EventFilter(correlation_id="run-1", submission_id="sub-2"), event(), False),
    ],
)
def test_event_filter(until: EventFilter, candidate: ReceivedEvent, matches: bool) -> None:
    assert until.matches(candidate) is matches


def test_the_correlation_id_falls_back_to_the_message_property() -> None:
    document = {"data": {"status": "Failed"}}
    received = ReceivedEvent(json.dumps(document).encode(), document, correlation_id="run-1")

    assert EventFilter(correlation_id="run-1").matches(received)


# -- browsing -------------------------------------------------------------------------


@dataclass
class Peeked:
    """The fields of ``ServiceBusReceivedMessage`` that ``ReceivedEvent`` reads."""

    sequence_number: int
    body: list[bytes]
    message_id: str = "m"
    correlation_id: str | None = None
    enqueued_time_utc: datetime = datetime(2025, 7, 1, tzinfo=timezone.utc)


class FakePeekReceiver:
    """Answers ``peek_messages`` from a fixed store; never locks or removes anything."""

    entity_path = "events/Subscriptions/gate"

    def __init__(self, count: int) -> None:
        self.store = [Peeked(n, [event(sequence_number=n).body]) for n in range(1, count + 1)]
        self.calls: list[tuple[int, int]] = []
        self.fail: Exception | None = None

    def peek_messages(self, max_message_count: int, *, sequence_number: int) -> list[Any]:
        self.calls.append((sequence_number, max_message_count))
        if self.fail is not None:
            raise self.fail
        found = [m for m in self.store if m.sequence_number >= sequence_number]
        return found[:2]


def test_browsing_pages_through_the_subscription_once_then_waits_for_more() -> None:
    receiver = FakePeekReceiver(3)
    slept: list[float] = []
    source = BrowsingSource(receiver, poll_interval=1.0, sleep=slept.append)  # type: ignore[arg-type]

    first, second, empty = source.receive(5.0), source.receive(5.0), source.receive(0.3)

    assert [e.sequence_number for e in first + second] == [1, 2, 3]
    assert empty == []
    assert [start for start, _ in receiver.calls] == [1, 3, 4]
    assert slept == [0.3]  # never sleeps past the caller's wait
    assert len(receiver.store) == 3  # nothing removed
    source.settle(first[0])  # a no-op: a peeked message cannot be settled


def test_browsing_translates_sdk_errors() -> None:
    from azure.servicebus.exceptions import MessagingEntityNotFoundError

    receiver = FakePeekReceiver(0)
    receiver.fail = MessagingEntityNotFoundError(message="no such subscription")
    source = BrowsingSource(receiver, sleep=lambda s: None)  # type: ignore[arg-type]

    with pytest.raises(EventReceiveError, match="peeking events/Subscriptions/gate failed"):
        source.receive(1.0)


# -- printing -------------------------------------------------------------------------


def test_an_event_prints_as_one_line_then_arms_error(capsys: pytest.CaptureFixture[str]) -> None:
    document = {
        "time": "2025-07-01T09:00:05.000Z",
        "data": {
            "status": "Failed",
            "operationId": "op-1",
            "correlationId": "run-1",
            "reason": "OperationFailed",
            "armStatus": "Failed",
            "polls": 3,
            "error": {"code": "QuotaExceeded", "message": "no"},
        },
    }

    output.print_event(ReceivedEvent(json.dumps(document).encode(), document), as_json=False)

    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert first == (
        "2025-07-01T09:00:05.000Z Failed operation=op-1 correlationId=run-1 "
        "reason=OperationFailed polls=3"
    )
    assert json.loads(rest.removeprefix("error: ")) == document["data"]["error"]


def test_json_output_is_one_event_per_line_and_non_events_go_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.print_event(event(), as_json=True)
    output.print_event(ReceivedEvent(b"\x00garbage", None, message_id="m-9"), as_json=True)

    captured = capsys.readouterr()
    [line] = captured.out.splitlines()
    assert json.loads(line)["data"]["operationId"] == "op-1"
    assert "m-9 is not an ops-status event" in captured.err


def test_a_rejection_prints_its_reasons() -> None:
    document = {
        "time": "t",
        "data": {"status": "Rejected", "correlationId": "r", "errors": ["a is bad", "b too"]},
    }

    assert output.event_line(document) == "t Rejected correlationId=r errors=a is bad; b too"
