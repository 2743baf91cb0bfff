"""The handler shell with in-memory ports: one message in, exactly one follow-up out."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from ops_status.bootstrap import build_dependencies
from ops_status.errors import ServiceBusSendError
from ops_status.handler import handle_watch_message
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.settings import Settings, load_settings
from tests.conftest import BASE_ENVIRONMENT, sample, sample_bytes
from tests.contracts import assert_valid_event
from tests.fakes import (
    ENQUEUED,
    RecordingOutputs,
    ScriptedStatusReader,
    intake_message,
    poll_message,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


SLEPT: list[float] = []


def wire(settings: Settings, observations: list[object], outputs: RecordingOutputs | None = None):  # type: ignore[no-untyped-def]
    reader = ScriptedStatusReader(observations)  # type: ignore[arg-type]
    outputs = outputs or RecordingOutputs()
    SLEPT.clear()
    deps = build_dependencies(
        settings, status_reader=reader, outputs=outputs, clock=lambda: T0, sleep=SLEPT.append
    )
    return deps, reader, outputs


def test_running_operation_is_rescheduled_on_the_queue_and_nothing_is_published(
    settings: Settings,
) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])

    result = handle_watch_message(intake_message(sample_bytes("watch-parts.json")), deps)

    assert result.action == "rescheduled"
    assert outputs.events == []
    [(message, enqueue_at)] = outputs.scheduled
    assert enqueue_at > T0
    assert enqueue_at == result.not_before
    assert json.loads(message.body)["pollState"]["attempt"] == 1


def test_a_whole_chain_ends_in_exactly_one_event(settings: Settings) -> None:
    deps, reader, outputs = wire(settings, [StatusRead("Running")] * 3 + [StatusRead("Succeeded")])
    message = intake_message(sample_bytes("watch-parts.json"))

    for _ in range(10):
        result = handle_watch_message(message, deps)
        if result.action == "finished":
            break
        message = poll_message(outputs.scheduled[-1][0])

    assert len(reader.requests) == 4
    assert len(outputs.scheduled) == 3
    [event] = outputs.events
    assert assert_valid_event(event.body)["data"]["polls"] == 4


def test_invalid_request_is_published_as_a_rejection_and_returns_normally(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    deps, reader, outputs = wire(settings, [StatusRead("Running")])
    body = json.dumps({**sample("watch-parts.json"), "operationId": "../../x"}).encode()

    with caplog.at_level(logging.WARNING):
        result = handle_watch_message(intake_message(body, message_id="m-9"), deps)

    assert result.action == "rejected"
    assert reader.requests == []  # nothing reaches ARM
    [event] = outputs.events
    data = assert_valid_event(event.body)["data"]
    assert data["correlationId"] == "pipeline-run-4711"
    assert data["receivedMessageId"] == "m-9"
    assert "operationId must be" in data["errors"][0]
    assert "watch.rejected" in caplog.text
    assert "correlation_id=pipeline-run-4711" in caplog.text


def test_a_failing_send_raises_so_the_host_redelivers(settings: Settings) -> None:
    deps, _, _ = wire(settings, [StatusRead("Running")], RecordingOutputs(fail_next=1))

    with pytest.raises(ServiceBusSendError):
        handle_watch_message(intake_message(sample_bytes("watch-parts.json")), deps)


@pytest.mark.parametrize(("delivery", "wait"), [(1, 15.0), (2, 30.0), (9, 135.0), (10, 150.0)])
def test_a_failing_send_waits_in_proportion_to_the_delivery_count_before_raising(
    settings: Settings, delivery: int, wait: float
) -> None:
    deps, _, _ = wire(settings, [StatusRead("Running")], RecordingOutputs(fail_next=1))

    with pytest.raises(ServiceBusSendError):
        handle_watch_message(
            intake_message(sample_bytes("watch-parts.json"), delivery_count=delivery), deps
        )

    assert [wait] == SLEPT


def test_the_wait_before_redelivery_is_capped_inside_the_function_timeout(
    settings: Settings,
) -> None:
    deps, _, _ = wire(settings, [StatusRead("Running")], RecordingOutputs(fail_next=1))

    with pytest.raises(ServiceBusSendError):
        handle_watch_message(
            intake_message(sample_bytes("watch-parts.json"), delivery_count=1000), deps
        )

    assert SLEPT == [180.0]


def test_the_wait_never_runs_past_what_is_left_of_the_function_timeout(
    settings: Settings,
) -> None:
    # Given a run whose read and failed send already took 250 s of the 300 s
    ticks = iter([T0, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=250)])
    reader = ScriptedStatusReader([StatusRead("Running")])
    slept: list[float] = []
    deps = build_dependencies(
        settings,
        status_reader=reader,
        outputs=RecordingOutputs(fail_next=1),
        clock=lambda: next(ticks),
        sleep=slept.append,
    )

    with pytest.raises(ServiceBusSendError):
        handle_watch_message(
            intake_message(sample_bytes("watch-parts.json"), delivery_count=9), deps
        )

    assert slept == [20.0]  # 300 - 30 margin - 250 elapsed, not 9 x 15


def test_ten_deliveries_of_a_failing_send_span_at_least_ten_minutes(settings: Settings) -> None:
    deps, _, _ = wire(settings, [StatusRead("Running")], RecordingOutputs(fail_next=10))

    for delivery in range(1, 11):
        with pytest.raises(ServiceBusSendError):
            handle_watch_message(
                intake_message(sample_bytes("watch-parts.json"), delivery_count=delivery), deps
            )

    # The 10th delivery starts after the waits of the first nine.
    assert sum(SLEPT[:9]) >= 600


def test_a_successful_step_never_waits(settings: Settings) -> None:
    deps, _, _ = wire(settings, [StatusRead("Running")])

    handle_watch_message(intake_message(sample_bytes("watch-parts.json"), delivery_count=5), deps)

    assert SLEPT == []


def test_no_token_is_a_failed_read_that_is_rescheduled_not_raised(settings: Settings) -> None:
    deps, _, outputs = wire(
        settings, [ReadFailure(ReadFailureKind.TOKEN_UNAVAILABLE, "no token: 503")]
    )

    result = handle_watch_message(intake_message(sample_bytes("watch-parts.json")), deps)

    assert result.action == "rescheduled"
    assert outputs.events == []
    state = json.loads(outputs.scheduled[0][0].body)["pollState"]
    assert state["failures"]["TokenUnavailable"]["count"] == 1


def test_redelivery_produces_the_same_follow_up_id(settings: Settings) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    body = sample_bytes("watch-parts.json")

    handle_watch_message(intake_message(body, delivery_count=1), deps)
    handle_watch_message(intake_message(body, delivery_count=2), deps)
    poll = outputs.scheduled[0][0]
    handle_watch_message(poll_message(poll, delivery_count=1), deps)
    handle_watch_message(poll_message(poll, delivery_count=2), deps)

    first, second, third, fourth = (m.message_id for m, _ in outputs.scheduled)
    assert first == second
    assert third == fourth
    assert first != third


def test_every_submission_is_its_own_watch_with_its_own_terminal_event_id(
    settings: Settings,
) -> None:
    # Same operation, same correlation id, resubmitted after the first watch ended: the
    # broker gives the second submission another sequence number and enqueued time.
    deps, _, outputs = wire(settings, [StatusRead("Succeeded")])
    body = sample_bytes("watch-parts.json")

    handle_watch_message(intake_message(body, message_id="same", sequence_number=7), deps)
    handle_watch_message(
        intake_message(
            body,
            message_id="same",
            sequence_number=912,
            enqueued_time=ENQUEUED + timedelta(minutes=65),
        ),
        deps,
    )

    first, second = outputs.events
    assert first.message_id != second.message_id
    assert first.message_id.endswith(".final")
    assert assert_valid_event(second.body)["data"]["submissionId"] == "same"


def test_identical_invalid_bodies_from_two_senders_get_one_rejection_each(
    settings: Settings,
) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    body = b'{"operationId": "../x"}'

    handle_watch_message(intake_message(body, message_id="a", sequence_number=1), deps)
    handle_watch_message(intake_message(body, message_id="b", sequence_number=2), deps)
    handle_watch_message(intake_message(body, message_id="b", sequence_number=2), deps)

    ids = [event.message_id for event in outputs.events]
    assert ids[0] != ids[1]
    assert ids[1] == ids[2]  # a redelivery of one message repeats its own id


def test_a_submission_carrying_poll_state_is_rejected(settings: Settings) -> None:
    deps, reader, outputs = wire(settings, [StatusRead("Running")])
    forged = {
        **sample("watch-parts.json"),
        "pollState": {
            "attempt": 0,
            "firstSeen": "2099-01-01T00:00:00Z",
            "deadline": "2099-01-01T23:00:00Z",
        },
    }

    result = handle_watch_message(intake_message(json.dumps(forged).encode()), deps)

    assert result.action == "rejected"
    assert reader.requests == []
    data = assert_valid_event(outputs.events[0].body)["data"]
    assert any("pollState is written only by ops-status" in e for e in data["errors"])
    assert data["operationId"] == "testoperationid"


def test_the_deadline_runs_from_the_brokers_enqueued_time_not_from_first_processing(
    settings: Settings,
) -> None:
    # Submitted with a 60 s timeout, handled only after a 10-minute backlog: over at once.
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    body = json.dumps({**sample("watch-parts.json"), "timeout": 60}).encode()

    result = handle_watch_message(
        intake_message(body, enqueued_time=T0 - timedelta(minutes=10)), deps
    )

    assert result.status == "TimedOut"
    data = assert_valid_event(outputs.events[0].body)["data"]
    assert data["firstSeen"] == "2026-11-28T11:50:00.000Z"


def test_a_running_watch_is_clamped_not_rejected_when_max_timeout_is_lowered(
    settings: Settings,
) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    body = json.dumps({**sample("watch-parts.json"), "timeout": 80000}).encode()
    handle_watch_message(intake_message(body), deps)
    poll = outputs.scheduled[0][0]
    lowered = load_settings(
        BASE_ENVIRONMENT, OPS_STATUS_MAX_TIMEOUT="3600", OPS_STATUS_DEFAULT_TIMEOUT="3600"
    )
    deps_lowered, _, outputs_lowered = wire(lowered, [StatusRead("Running")])

    result = handle_watch_message(poll_message(poll), deps_lowered)

    assert result.action == "rescheduled"
    state = json.loads(outputs_lowered.scheduled[0][0].body)["pollState"]
    assert state["deadline"] == "2026-11-28T12:59:58.000Z"  # enqueued + 3600 s


def test_every_log_line_carries_message_operation_and_correlation_ids(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    deps, _, _ = wire(
        settings, [ReadFailure(ReadFailureKind.THROTTLED, "429", 429, retry_after=20)]
    )

    with caplog.at_level(logging.INFO, logger="ops_status"):
        handle_watch_message(
            intake_message(sample_bytes("watch-parts.json"), message_id="m-7"), deps
        )

    lines = [r for r in caplog.records if r.name.startswith("ops_status")]
    assert lines
    for record in lines:
        text = record.getMessage()
        assert "message_id=m-7" in text
        assert "operation_id=testoperationid" in text
        assert "correlation_id=pipeline-run-4711" in text


def test_concurrent_calls_from_a_thread_pool_each_get_their_own_follow_up(
    settings: Settings,
) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    bodies = [
        json.dumps({**sample("watch-parts.json"), "operationId": f"op-{i}"}).encode()
        for i in range(50)
    ]
    errors: list[BaseException] = []

    def work(n: int, body: bytes) -> None:
        try:
            handle_watch_message(intake_message(body, sequence_number=n), deps)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n, b)) for n, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    ids = {message.message_id for message, _ in outputs.scheduled}
    assert len(ids) == 50


def test_deadline_in_the_request_body_ends_the_watch_as_timed_out(settings: Settings) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    body = json.dumps(
        {**sample("watch-parts.json"), "deadline": (T0 - timedelta(minutes=1)).isoformat()}
    ).encode()

    result = handle_watch_message(intake_message(body), deps)

    assert result.action == "finished"
    assert result.status == "TimedOut"
    assert assert_valid_event(outputs.events[0].body)["type"] == "OpsStatus.Operation.TimedOut"


def test_a_broken_poll_message_ends_its_watch_with_one_rejection_under_the_watch_id(
    settings: Settings,
) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    handle_watch_message(intake_message(sample_bytes("watch-parts.json")), deps)
    poll = outputs.scheduled[0][0]
    body = json.loads(poll.body)
    body["pollState"]["deadline"] = "garbled"
    broken = replace(poll, body=json.dumps(body).encode())

    result = handle_watch_message(poll_message(broken), deps)

    assert result.action == "rejected"
    [event] = outputs.events
    data = assert_valid_event(event.body)["data"]
    assert event.message_id == f"{body['watchId']}.final"
    assert data["watchId"] == body["watchId"]
    assert data["submissionId"] == "submission-1"
    assert data["receivedMessageId"] == poll.message_id
