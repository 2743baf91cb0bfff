"""The handler shell with in-memory ports: one message in, exactly one follow-up out."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest

from ops_status.bootstrap import build_dependencies
from ops_status.errors import ServiceBusSendError
from ops_status.handler import handle_watch_message
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.settings import Settings
from tests.conftest import sample, sample_bytes
from tests.contracts import assert_valid_event
from tests.fakes import RecordingOutputs, ScriptedStatusReader

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def wire(settings: Settings, observations: list[object], outputs: RecordingOutputs | None = None):  # type: ignore[no-untyped-def]
    reader = ScriptedStatusReader(observations)  # type: ignore[arg-type]
    outputs = outputs or RecordingOutputs()
    deps = build_dependencies(settings, status_reader=reader, outputs=outputs, clock=lambda: T0)
    return deps, reader, outputs


def test_running_operation_is_rescheduled_on_the_queue_and_nothing_is_published(
    settings: Settings,
) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])

    result = handle_watch_message(sample_bytes("watch-parts.json"), deps, message_id="m-1")

    assert result.action == "rescheduled"
    assert outputs.events == []
    [(message, enqueue_at)] = outputs.scheduled
    assert enqueue_at > T0
    assert enqueue_at == result.not_before
    assert json.loads(message.body)["pollState"]["attempt"] == 1


def test_a_whole_chain_ends_in_exactly_one_event(settings: Settings) -> None:
    deps, reader, outputs = wire(settings, [StatusRead("Running")] * 3 + [StatusRead("Succeeded")])
    body = sample_bytes("watch-parts.json")

    for _ in range(10):
        result = handle_watch_message(body, deps)
        if result.action == "finished":
            break
        body = outputs.scheduled[-1][0].body

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
        result = handle_watch_message(body, deps, message_id="m-9")

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
        handle_watch_message(sample_bytes("watch-parts.json"), deps)


def test_redelivery_produces_the_same_follow_up_id(settings: Settings) -> None:
    deps, _, outputs = wire(settings, [StatusRead("Running")])
    body = sample_bytes("watch-parts.json")

    handle_watch_message(body, deps)
    handle_watch_message(body, deps)

    first, second = outputs.scheduled
    assert first[0].message_id == second[0].message_id


def test_every_log_line_carries_message_operation_and_correlation_ids(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    deps, _, _ = wire(
        settings, [ReadFailure(ReadFailureKind.THROTTLED, "429", 429, retry_after=20)]
    )

    with caplog.at_level(logging.INFO, logger="ops_status"):
        handle_watch_message(sample_bytes("watch-parts.json"), deps, message_id="m-7")

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

    def work(body: bytes) -> None:
        try:
            handle_watch_message(body, deps)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in bodies]
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

    result = handle_watch_message(body, deps)

    assert result.action == "finished"
    assert result.status == "TimedOut"
    assert assert_valid_event(outputs.events[0].body)["type"] == "OpsStatus.Operation.TimedOut"
