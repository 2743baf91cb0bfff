"""The trace context in the contracts: the CloudEvent's extension attributes, what the
Service Bus adapter stamps, what ``submit`` prints and ``listen`` shows. Pure (``submit
--dry-run`` sends nothing)."""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Iterator
from datetime import datetime, timezone

import jsonschema
import pytest

from ops_status import cli, tracing
from ops_status.cli import output
from ops_status.decision import FinalStatus, Finish, Outcome
from ops_status.events import build_terminal_event
from ops_status.listen import ReceivedEvent
from ops_status.observation import StatusRead
from ops_status.pipeline import follow_operation
from ops_status.policy import PollPolicy
from ops_status.request import parse_watch_request
from ops_status.servicebus import _to_sdk, trace_properties
from ops_status.settings import load_settings
from ops_status.traceparent import TraceContext, new_trace_context
from tests.conftest import BASE_ENVIRONMENT, sample_bytes
from tests.contracts import EVENT, assert_valid_event
from tests.telemetry import install_tracing, spans_in_trace

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
TRACE = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, "rojo=1,congo=2")


def finished_event(trace: TraceContext | None) -> bytes:
    request = parse_watch_request(
        sample_bytes("watch-parts.json"), arm_endpoint="https://management.azure.com"
    ).admitted("a" * 32, submission_id="s-1", first_seen=T0, policy=PollPolicy())
    action = Finish(Outcome(FinalStatus.SUCCEEDED, arm_status="Succeeded"), request)
    return build_terminal_event(
        action, arm_endpoint="https://management.azure.com", now=T0, trace=trace
    ).body


def test_the_event_carries_the_distributed_tracing_extension_and_validates() -> None:
    envelope = assert_valid_event(finished_event(TRACE))

    assert envelope["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert envelope["tracestate"] == "rojo=1,congo=2"


def test_an_event_without_a_trace_has_neither_attribute() -> None:
    envelope = assert_valid_event(finished_event(None))

    assert "traceparent" not in envelope
    assert "tracestate" not in envelope


@pytest.mark.parametrize(
    "change",
    [
        {"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"},
        {"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
        {"traceparent": "not a traceparent"},
        {"traceparent": None, "tracestate": "rojo=1"},  # tracestate alone
    ],
)
def test_the_schema_refuses_a_malformed_trace_context(change: dict[str, object]) -> None:
    envelope = json.loads(finished_event(TRACE))
    for key, value in change.items():
        if value is None:
            envelope.pop(key)
        else:
            envelope[key] = value

    with pytest.raises(jsonschema.ValidationError):
        EVENT.validate(envelope)


def test_the_message_carries_the_context_as_service_bus_defines_it() -> None:
    request = parse_watch_request(
        sample_bytes("watch-parts.json"), arm_endpoint="https://management.azure.com"
    ).admitted("a" * 32, submission_id="s-1", first_seen=T0, policy=PollPolicy())
    message = build_terminal_event(
        Finish(Outcome(FinalStatus.SUCCEEDED), request),
        arm_endpoint="https://management.azure.com",
        now=T0,
        trace=TRACE,
    )

    sdk_message = _to_sdk(message)

    properties = sdk_message.application_properties or {}
    assert properties[b"Diagnostic-Id"] == properties[b"traceparent"] == TRACE.traceparent
    assert properties[b"tracestate"] == "rojo=1,congo=2"
    assert properties["eventType"] == "OpsStatus.Operation.Succeeded"  # filters unchanged
    without_state = trace_properties(TraceContext(TRACE.trace_id, TRACE.parent_id))
    assert b"tracestate" not in without_state


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> Iterator[None]:
    for name in ("OPS_STATUS_ARM_ENDPOINT", "TRACEPARENT", "TRACESTATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPS_STATUS_SUBMIT_HISTORY", str(tmp_path / "submitted.json"))
    loggers = [logging.getLogger(name) for name in ("azure", "uamqp", "msal", "urllib3")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def dry_run(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = cli.main(
        [
            "submit", "--dry-run", "--json", "--subscription", SUBSCRIPTION,
            "--location", "westus", "--operation-id", "op-1", "--correlation-id", "run-1",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document: dict[str, object] = json.loads(captured.out)
    return document


@pytest.mark.usefixtures("cli_environment")
def test_submit_continues_the_callers_traceparent_and_prints_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_tracing()
    caller = new_trace_context()
    monkeypatch.setenv("TRACEPARENT", caller.traceparent)
    monkeypatch.setenv("TRACESTATE", "ci=run-4711")

    document = dry_run(capsys)

    assert document["traceId"] == caller.trace_id
    traceparent = str(document["traceparent"])
    assert traceparent.startswith(f"00-{caller.trace_id}-")
    assert traceparent.split("-")[2] != caller.parent_id  # submit's own span, a child


@pytest.mark.usefixtures("cli_environment")
def test_an_invalid_traceparent_from_the_pipeline_starts_a_new_trace_not_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_tracing()
    monkeypatch.setenv("TRACEPARENT", "00-garbage-01")

    first, second = dry_run(capsys), dry_run(capsys)

    assert len(str(first["traceId"])) == 32
    assert first["traceId"] != second["traceId"]
    assert first["messageId"] == second["messageId"]  # the trace never changes the id


def test_listen_shows_each_events_trace_id() -> None:
    envelope = json.loads(finished_event(TRACE))
    event = ReceivedEvent(body=b"", event=envelope)

    line = output.event_line(envelope, trace_id=event.trace.trace_id if event.trace else None)

    assert line.endswith(f" traceId={TRACE.trace_id}")


def test_listen_falls_back_to_the_messages_properties_for_the_trace() -> None:
    envelope = json.loads(finished_event(None))
    event = ReceivedEvent(body=b"", event=envelope, message_trace=TRACE)
    broken = ReceivedEvent(body=b"", event={**envelope, "traceparent": "x"}, message_trace=None)

    assert event.trace == TRACE
    assert broken.trace is None


def test_watch_in_process_reads_inside_one_trace() -> None:
    # Given a reader that notes the trace each read runs in
    install_tracing()
    seen: list[TraceContext | None] = []

    class NotingReader:
        def get_operation_status(self, request: object) -> StatusRead:
            seen.append(tracing.current_trace_context())
            return StatusRead("Succeeded" if len(seen) == 3 else "Running")

    request = parse_watch_request(
        sample_bytes("watch-parts.json"), arm_endpoint="https://management.azure.com"
    )

    # When the operation is followed to its end in this process
    follow_operation(
        request,
        NotingReader(),
        load_settings(BASE_ENVIRONMENT),
        clock=lambda: T0,
        sleep=lambda _: None,
    )

    # Then all three reads ran under one `ops-status watch` span
    assert len(seen) == 3
    assert all(context is not None for context in seen)
    assert len({(c.trace_id, c.parent_id) for c in seen if c}) == 1
    [span] = [s for s in spans_in_trace(seen[0].trace_id) if s.name == "ops-status watch"]  # type: ignore[union-attr]
    assert span.attributes["ops_status.outcome"] == "Succeeded"
    assert span.attributes["ops_status.attempt"] == 3
