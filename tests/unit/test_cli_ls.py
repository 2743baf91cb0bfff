"""``ops-status ls``: what a follow-up on the polls queue says about its watch, which
watches a filter keeps, how they print, and that browsing pages through the queue once.

The follow-ups are built by the product itself (``decide`` then ``to_body``), and the
queue is a fake of the one SDK call ``ls`` makes (``peek_messages``). The real SDK against
the AMQP emulator is in tests/e2e/test_cli_ls.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessageState

from ops_status import cli
from ops_status.cli import ls, wiring
from ops_status.decision import Reschedule, decide
from ops_status.errors import OpsStatusError
from ops_status.inflight import (
    BrowsedMessage,
    InFlightWatch,
    WatchFilter,
    browse_messages,
    in_flight_watch,
)
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.policy import PollPolicy
from ops_status.request import parse_watch_request

ARM = "https://management.azure.com"
SUB_A = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
SUB_B = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
POLICY = PollPolicy(min_delay=30, max_delay=60, jitter=0)


def follow_up(
    operation_id: str,
    *,
    correlation_id: str | None = None,
    subscription: str = SUB_A,
    observation: object = None,
    context: dict[str, Any] | None = None,
    watch_id: str = "0123456789abcdef0123456789abcdef",
) -> tuple[bytes, datetime]:
    """The body the product schedules after one read, and when that next read is due."""
    body: dict[str, Any] = {
        "subscriptionId": subscription,
        "location": "westus",
        "operationId": operation_id,
    }
    if correlation_id is not None:
        body["correlationId"] = correlation_id
    if context is not None:
        body["context"] = context
    request = parse_watch_request(json.dumps(body), arm_endpoint=ARM, policy=POLICY).admitted(
        watch_id, submission_id=f"sub-{operation_id}", first_seen=T0, policy=POLICY
    )
    read = observation or StatusRead("InProgress", percent_complete=40)
    action = decide(request, read, T0 + timedelta(seconds=5), POLICY)  # type: ignore[arg-type]
    assert isinstance(action, Reschedule)
    return json.dumps(action.next_request.to_body()).encode(), action.not_before


def browsed(
    body: bytes, due: datetime | None, sequence_number: int = 1, *, state: str = "scheduled"
) -> BrowsedMessage:
    return BrowsedMessage(
        sequence_number=sequence_number,
        body=body,
        message_id=f"m-{sequence_number}",
        state=state,
        scheduled_enqueue_time=due,
        enqueued_time=T0,
        delivery_count=0,
    )


def watch_of(operation_id: str, sequence_number: int = 1, **kwargs: Any) -> InFlightWatch:
    body, due = follow_up(operation_id, **kwargs)
    return in_flight_watch(browsed(body, due, sequence_number), arm_endpoint=ARM, policy=POLICY)


# -- one follow-up --------------------------------------------------------------------


def test_a_follow_up_shows_its_watch_as_the_worker_will_read_it() -> None:
    watch = watch_of("op-1", correlation_id="run-1", context={"pipeline": "deploy"})

    assert watch.problem is None
    assert watch.request is not None
    state = watch.request.state
    assert state is not None
    assert (watch.operation, watch.request.correlation_id) == ("op-1", "run-1")
    assert watch.request.context == {"pipeline": "deploy"}
    assert (state.last_status, state.percent_complete, state.attempt) == ("InProgress", 40.0, 1)
    assert state.first_seen == T0
    assert watch.next_read_due == T0 + timedelta(seconds=35)


def test_an_active_follow_up_is_due_now() -> None:
    body, due = follow_up("op-1")
    watch = in_flight_watch(browsed(body, due, state="active"), arm_endpoint=ARM)

    assert watch.next_read_due is None


@pytest.mark.parametrize(
    "body",
    [
        b"\xff not utf-8",
        b"[]",
        b'{"operationId": "op-1"}',
        b'{"statusUrl": "https://evil.example/x"}',
    ],
)
def test_a_follow_up_that_does_not_parse_is_listed_as_unreadable_not_raised(body: bytes) -> None:
    watch = in_flight_watch(browsed(body, T0), arm_endpoint=ARM)

    assert watch.request is None
    assert watch.problem
    assert (watch.operation, watch.last_status) == (None, None)


# -- filters --------------------------------------------------------------------------


def test_filters_combine_and_compare_subscription_and_status_case_insensitively() -> None:
    throttled = ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 503", 503)
    watches = [
        watch_of("op-a", correlation_id="run-1"),
        watch_of("op-b", correlation_id="run-2", subscription=SUB_B),
        watch_of("op-c", correlation_id="run-1", observation=StatusRead("Deleting")),
        watch_of("op-d", correlation_id="run-1", observation=throttled),  # no status yet
        in_flight_watch(browsed(b"garbage", T0), arm_endpoint=ARM),
    ]

    def kept(selected: WatchFilter) -> list[str | None]:
        return [w.operation for w in watches if selected.matches(w)]

    assert kept(WatchFilter()) == ["op-a", "op-b", "op-c", "op-d", None]
    assert kept(WatchFilter(correlation_id="run-1")) == ["op-a", "op-c", "op-d"]
    assert kept(WatchFilter(subscription_id=SUB_B.upper())) == ["op-b"]
    assert kept(WatchFilter(status="inprogress")) == ["op-a", "op-b"]
    assert kept(WatchFilter(correlation_id="run-1", status="DELETING")) == ["op-c"]
    assert kept(WatchFilter(correlation_id="run-9")) == []


# -- output ---------------------------------------------------------------------------


def test_the_table_has_one_aligned_row_per_watch_and_a_line_per_unreadable_follow_up() -> None:
    watches = [
        watch_of("op-a", correlation_id="run-1", context={"pipeline": "deploy", "n": 3}),
        watch_of("op-long-name", 2, observation=StatusRead("Running")),
        in_flight_watch(browsed(b"garbage", T0, 3), arm_endpoint=ARM),
    ]

    lines = ls.render_table(watches, now=T0 + timedelta(seconds=5))

    header, first, second, note = lines
    assert header.split("  ")[0].rstrip() == "OPERATION"
    assert [header.index(c) for c in ("CORRELATION ID", "STATUS")] == [
        first.index("run-1"),
        first.index("InProgress 40%"),
    ]
    assert first.split() == [
        "op-a", "run-1", "InProgress", "40%", "1", "2026-12-02T09:00:00Z", "in", "30s",
        "pipeline=deploy", "n=3",
    ]  # fmt: skip
    assert second.split() == [
        "op-long-name", "-", "Running", "1", "2026-12-02T09:00:00Z", "in", "30s", "-",
    ]  # fmt: skip
    assert note.startswith("unreadable follow-up #3 (messageId m-3): body is not valid JSON")


def test_a_read_that_is_already_due_shows_due_now() -> None:
    lines = ls.render_table([watch_of("op-a")], now=T0 + timedelta(hours=1))

    assert lines[1].split()[-3:-1] == ["due", "now"]


def test_the_json_document_carries_every_field_of_the_watch() -> None:
    watch = watch_of("op-a", correlation_id="run-1", context={"pipeline": "deploy"})

    document = ls.watch_document(watch, ARM, now=T0)

    assert document == {
        "sequenceNumber": 1,
        "messageId": "m-1",
        "messageState": "scheduled",
        "deliveryCount": 0,
        "nextReadDue": "2026-12-02T09:00:35.000Z",
        "dueNow": False,
        "unreadable": None,
        "watchId": "0123456789abcdef0123456789abcdef",
        "submissionId": "sub-op-a",
        "operationId": "op-a",
        "subscriptionId": SUB_A,
        "location": "westus",
        "statusUrl": f"{ARM}/subscriptions/{SUB_A}/providers/Microsoft.Cache/locations/westus/"
        "operationsStatus/op-a?api-version=2025-07-01",
        "correlationId": "run-1",
        "context": {"pipeline": "deploy"},
        "lastStatus": "InProgress",
        "percentComplete": 40.0,
        "reads": 1,
        "consecutiveFailures": 0,
        "firstSeen": "2026-12-02T09:00:00.000Z",
        "deadline": "2026-12-02T11:00:00.000Z",
    }
    unreadable = in_flight_watch(browsed(b"garbage", None, 7, state="active"), arm_endpoint=ARM)
    assert ls.watch_document(unreadable, ARM, now=T0)["unreadable"].startswith("body is not")


# -- browsing -------------------------------------------------------------------------


@dataclass
class Peeked:
    """The attributes of an SDK ``ServiceBusReceivedMessage`` that browsing reads."""

    sequence_number: int
    body: list[bytes]
    scheduled_enqueue_time_utc: datetime | None = None
    state: ServiceBusMessageState = ServiceBusMessageState.SCHEDULED
    message_id: str = "m"
    enqueued_time_utc: datetime = T0
    delivery_count: int = 0


@dataclass
class FakeQueue:
    """Answers ``peek_messages`` from a fixed store, two at a time; removes nothing."""

    store: list[Peeked]
    calls: list[int] = field(default_factory=list)
    fail: Exception | None = None
    opened: list[str] = field(default_factory=list)

    def peek_messages(self, max_message_count: int = 1, *, sequence_number: int = 0) -> Any:
        self.calls.append(sequence_number)
        if self.fail is not None:
            raise self.fail
        return [m for m in self.store if m.sequence_number >= sequence_number][:2]

    # the ServiceBusClient and receiver context managers ``ls`` opens
    def get_queue_receiver(self, name: str) -> FakeQueue:
        self.opened.append(name)
        return self

    def __enter__(self) -> FakeQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_browsing_pages_through_the_queue_once_in_sequence_order() -> None:
    queue = FakeQueue([Peeked(n, [b"x"]) for n in (3, 4, 9, 12, 13)])

    numbers = [m.sequence_number for m in browse_messages(queue)]

    assert numbers == [3, 4, 9, 12, 13]
    assert queue.calls == [1, 5, 13, 14]  # each page after the last number seen; empty ends
    assert len(queue.store) == 5


def test_browsing_reads_state_and_schedule_from_the_sdk_message() -> None:
    due = T0 + timedelta(minutes=1)
    queue = FakeQueue(
        [
            Peeked(1, [b"a", b"b"], due, message_id="m-1"),
            Peeked(2, [b"c"], None, ServiceBusMessageState.ACTIVE, delivery_count=2),
        ]
    )

    first, second = browse_messages(queue)

    assert (first.body, first.state, first.scheduled_enqueue_time) == (b"ab", "scheduled", due)
    assert (second.state, second.delivery_count) == ("active", 2)


def test_browsing_translates_sdk_errors() -> None:
    from azure.servicebus.exceptions import ServiceBusAuthorizationError

    queue = FakeQueue([], fail=ServiceBusAuthorizationError(message="Listen claim required"))

    with pytest.raises(OpsStatusError, match="browsing polls failed: Listen claim"):
        list(browse_messages(queue, entity="polls"))


# -- the command ------------------------------------------------------------------------


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> FakeQueue:
    monkeypatch.setenv("OPS_STATUS_POLLS_QUEUE", "ops-status-polls")
    monkeypatch.setenv("OPS_STATUS_ARM_ENDPOINT", ARM)
    bodies = [
        follow_up("op-a", correlation_id="run-1"),
        follow_up("op-b", correlation_id="run-2"),
    ]
    queue = FakeQueue(
        [Peeked(n, [body], due) for n, (body, due) in enumerate(bodies, start=1)]
        + [Peeked(3, [b"garbage"], None, ServiceBusMessageState.ACTIVE)]
    )
    monkeypatch.setattr(wiring, "service_bus_client", lambda args: queue)
    return queue


def test_ls_json_lists_every_follow_up_and_exits_0(
    polls: FakeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["ls", "--json"])

    out, err = capsys.readouterr()
    assert code == 0
    assert [w["operationId"] if w["unreadable"] is None else "?" for w in json.loads(out)] == [
        "op-a",
        "op-b",
        "?",
    ]
    assert polls.opened == ["ops-status-polls"]
    assert "2 watches in flight on ops-status-polls, 1 unreadable follow-up" in err


def test_ls_filters_from_flags_and_browses_the_queue_the_flag_names(
    polls: FakeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["ls", "--correlation-id", "run-2", "--queue", "other-polls"])

    out, _ = capsys.readouterr()
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["OPERATION", "op-b"]
    assert polls.opened == ["other-polls"]


def test_ls_with_nothing_in_flight_prints_an_empty_list_and_exits_0(
    polls: FakeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    polls.store.clear()

    assert cli.main(["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["ls"]) == 0
    assert capsys.readouterr().out == ""


def test_ls_without_a_polls_queue_names_the_setting_and_the_flag(
    polls: FakeQueue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPS_STATUS_POLLS_QUEUE")

    assert cli.main(["ls"]) == 64
    err = capsys.readouterr().err
    assert "OPS_STATUS_POLLS_QUEUE" in err
    assert "--queue" in err
