"""Spans of the handler with in-memory ports and the real OpenTelemetry SDK recording.

The Service Bus round trip of the context (application properties on the wire) is the
e2e test's (tests/e2e/test_trace_e2e.py); here a follow-up's ``trace`` is handed to the
next step as the adapter would read it back, so each step's span tree can be checked.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from azure.functions.servicebus import ServiceBusMessage as FunctionsMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ops_status.bootstrap import build_dependencies
from ops_status.errors import ServiceBusSendError
from ops_status.events import OutboundMessage
from ops_status.handler import Dependencies, handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.servicebus import trace_properties
from ops_status.settings import Settings
from ops_status.traceparent import TraceContext, new_trace_context, parse_traceparent
from tests.conftest import sample_bytes
from tests.contracts import assert_valid_event
from tests.fakes import RecordingOutputs, ScriptedStatusReader, intake_message, poll_message
from tests.secrets import find_secrets
from tests.telemetry import hex_id, install_tracing, spans_in_trace

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def sdk_tracing() -> None:
    install_tracing()


def wire(settings: Settings, observations: list[object]) -> tuple[Dependencies, RecordingOutputs]:
    outputs = RecordingOutputs()
    reader = ScriptedStatusReader(observations)  # type: ignore[arg-type]
    deps = build_dependencies(
        settings, status_reader=reader, outputs=outputs, clock=lambda: T0, sleep=lambda _: None
    )
    return deps, outputs


def received(
    outbound: OutboundMessage, *, sequence_number: int, delivery: int = 1
) -> InboundMessage:
    """A follow-up as the polls trigger gets it: the context the adapter stamped, read back."""
    message = poll_message(outbound, sequence_number=sequence_number, delivery_count=delivery)
    return replace(message, trace_context=outbound.trace)


def by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def span_id(span: ReadableSpan) -> str:
    return hex_id(span.context.span_id, 16)


def test_a_chain_of_steps_is_one_trace_continuing_the_pipelines_context(
    settings: Settings,
) -> None:
    # Given a submission whose pipeline sent a traceparent
    caller = new_trace_context()
    deps, outputs = wire(
        settings, [StatusRead("Creating"), StatusRead("Creating"), StatusRead("Succeeded")]
    )
    message = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)

    # When three steps run, each on the follow-up the previous one sent
    for n in range(3):
        result = handle_watch_message(message, deps)
        if result.action == "finished":
            break
        message = received(outputs.scheduled[-1][0], sequence_number=100 + n)

    # Then every span is in the caller's trace, one process span per attempt, in order
    spans = spans_in_trace(caller.trace_id)
    steps = by_name(spans, "process ")
    assert [s.attributes["ops_status.attempt"] for s in steps] == [1, 2, 3]
    assert [s.name for s in steps] == ["process intake", "process polls", "process polls"]
    assert all(s.kind is SpanKind.CONSUMER for s in steps)
    # ... the first a child of the pipeline's span, each next one of the send before it
    assert span_id_of_parent(steps[0]) == caller.parent_id
    sends = by_name(spans, "send ")
    assert [s.name for s in sends] == ["send polls", "send polls", "send events"]
    assert all(s.kind is SpanKind.PRODUCER for s in sends)
    for step, send in zip(steps[1:], sends, strict=False):
        assert span_id_of_parent(step) == span_id(send)
        assert [hex_id(link.context.span_id, 16) for link in step.links] == [span_id(send)]
    # ... and the event carries the last send span's context, in its body and on the message
    [event] = outputs.events
    envelope = assert_valid_event(event.body)
    assert event.trace is not None
    assert envelope["traceparent"] == event.trace.traceparent
    assert event.trace.parent_id == span_id(sends[-1])
    assert event.trace.trace_id == caller.trace_id


def span_id_of_parent(span: ReadableSpan) -> str | None:
    return hex_id(span.parent.span_id, 16) if span.parent is not None else None


def test_each_step_says_what_it_read_and_what_it_decided(settings: Settings) -> None:
    caller = new_trace_context()
    throttled = ReadFailure(
        ReadFailureKind.THROTTLED, "429 Too Many Requests", 429, retry_after=5.0, remaining_reads=0
    )
    deps, outputs = wire(settings, [StatusRead("Creating", remaining_reads=120), throttled])
    first = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)

    handle_watch_message(first, deps)
    handle_watch_message(received(outputs.scheduled[-1][0], sequence_number=101), deps)

    running, limited = by_name(spans_in_trace(caller.trace_id), "process ")
    assert running.attributes["messaging.system"] == "servicebus"
    assert running.attributes["messaging.operation.type"] == "process"
    assert running.attributes["messaging.destination.name"] == "intake"
    assert running.attributes["messaging.message.id"] == "submission-1"
    assert running.attributes["messaging.servicebus.message.delivery_count"] == 1
    assert running.attributes["server.address"] == "contoso.servicebus.windows.net"
    assert running.attributes["ops_status.operation_id"] == "testoperationid"
    assert running.attributes["ops_status.arm_status"] == "Creating"
    assert running.attributes["http.response.status_code"] == 200
    assert running.attributes["ops_status.throttled"] is False
    assert running.attributes["ops_status.remaining_reads"] == 120
    assert running.attributes["ops_status.action"] == "rescheduled"
    assert running.attributes["ops_status.poll.delay"] > 0
    assert limited.attributes["ops_status.attempt"] == 2
    assert limited.attributes["ops_status.throttled"] is True
    assert limited.attributes["http.response.status_code"] == 429
    assert limited.attributes["ops_status.read_failure"] == "Throttled"
    assert limited.attributes["ops_status.poll.delay"] >= 5.0
    assert "ops_status.arm_status" not in limited.attributes


def test_a_submission_without_a_context_starts_its_own_trace(settings: Settings) -> None:
    deps, outputs = wire(settings, [StatusRead("Running")])

    handle_watch_message(intake_message(sample_bytes("watch-parts.json")), deps)

    [(poll, _)] = outputs.scheduled
    assert poll.trace is not None
    [step] = by_name(spans_in_trace(poll.trace.trace_id), "process ")
    assert step.parent is None
    assert step.links == ()


def test_an_invalid_traceparent_from_a_pipeline_is_ignored_not_rejected(
    settings: Settings,
) -> None:
    # Given a Functions delivery whose pipeline stamped garbage as its trace context
    delivered = FunctionsMessage(
        body=sample_bytes("watch-parts.json"),
        message_id="m-1",
        delivery_count=1,
        content_type="application/json",
        application_properties={"traceparent": "00-not-a-trace-01", "Diagnostic-Id": "|x.1."},
        user_properties={},
        sequence_number=7,
        enqueued_time_utc=datetime(2026, 11, 28, 11, 59, tzinfo=timezone.utc),
    )
    deps, outputs = wire(settings, [StatusRead("Running")])

    message = InboundMessage.from_functions(delivered, Queue.INTAKE)
    result = handle_watch_message(message, deps)

    # Then the watch runs, in a new trace of its own
    assert message.trace_context is None
    assert result.action == "rescheduled"
    [(poll, _)] = outputs.scheduled
    assert poll.trace is not None
    assert parse_traceparent(poll.trace.traceparent) == replace(poll.trace, tracestate=None)


def test_a_functions_delivery_continues_the_diagnostic_id_it_carries(settings: Settings) -> None:
    caller = new_trace_context()
    delivered = FunctionsMessage(
        body=sample_bytes("watch-parts.json"),
        message_id="m-1",
        delivery_count=1,
        application_properties={"Diagnostic-Id": caller.traceparent},
        user_properties={},
        sequence_number=8,
        enqueued_time_utc=datetime(2026, 11, 28, 11, 59, tzinfo=timezone.utc),
    )
    deps, _ = wire(settings, [StatusRead("Running")])

    handle_watch_message(InboundMessage.from_functions(delivered, Queue.INTAKE), deps)

    [step] = by_name(spans_in_trace(caller.trace_id), "process ")
    assert span_id_of_parent(step) == caller.parent_id


def test_inside_a_host_span_of_the_same_trace_that_span_is_the_parent(settings: Settings) -> None:
    # Given the host already runs the delivery inside its own span, a child of the message's
    caller = new_trace_context()
    deps, _ = wire(settings, [StatusRead("Running")])
    message = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)
    host_context = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                int(caller.trace_id, 16), int("1" * 16, 16), is_remote=True,
                trace_flags=trace.TraceFlags(1),
            )
        )
    )  # fmt: skip

    with trace.use_span(trace.get_current_span(host_context)):
        handle_watch_message(message, deps)

    [step] = by_name(spans_in_trace(caller.trace_id), "process ")
    assert span_id_of_parent(step) == "1" * 16
    assert [hex_id(link.context.span_id, 16) for link in step.links] == [caller.parent_id]


def test_inside_a_span_of_another_trace_the_message_wins_and_the_other_is_linked(
    settings: Settings,
) -> None:
    caller, other = new_trace_context(), new_trace_context()
    deps, _ = wire(settings, [StatusRead("Running")])
    message = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)
    ambient = trace.NonRecordingSpan(
        trace.SpanContext(int(other.trace_id, 16), int(other.parent_id, 16), is_remote=True)
    )

    with trace.use_span(ambient):
        handle_watch_message(message, deps)

    [step] = by_name(spans_in_trace(caller.trace_id), "process ")
    assert span_id_of_parent(step) == caller.parent_id
    assert {hex_id(link.context.trace_id) for link in step.links} == {
        caller.trace_id,
        other.trace_id,
    }


def test_a_rejection_is_published_in_the_submissions_trace(settings: Settings) -> None:
    caller = new_trace_context()
    deps, outputs = wire(settings, [StatusRead("Running")])
    message = replace(intake_message(b'{"operationId": 5}'), trace_context=caller)

    result = handle_watch_message(message, deps)

    assert result.action == "rejected"
    [event] = outputs.events
    envelope = assert_valid_event(event.body)
    assert parse_traceparent(envelope["traceparent"]) == replace(event.trace, tracestate=None)
    spans = spans_in_trace(caller.trace_id)
    [step] = by_name(spans, "process ")
    [send] = by_name(spans, "send ")
    assert step.attributes["ops_status.outcome"] == "Rejected"
    assert send.attributes["cloudevents.event_type"] == "OpsStatus.Watch.Rejected"
    assert send.attributes["cloudevents.event_id"] == event.message_id


def test_the_terminal_send_span_describes_the_cloudevent(settings: Settings) -> None:
    caller = TraceContext(new_trace_context().trace_id, "2" * 16, 1, "vendor=abc")
    deps, outputs = wire(settings, [StatusRead("Succeeded", end_time="2026-11-28T11:59:59Z")])
    message = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)

    handle_watch_message(message, deps)

    [event] = outputs.events
    envelope = json.loads(event.body)
    # The vendor's tracestate travels on with the trace
    assert envelope["tracestate"] == "vendor=abc"
    assert trace_properties(event.trace)[b"tracestate"] == "vendor=abc"  # type: ignore[arg-type]
    spans = spans_in_trace(caller.trace_id)
    [send] = by_name(spans, "send ")
    assert send.name == "send events"
    assert send.attributes["messaging.destination.name"] == "events"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.message.id"] == event.message_id
    assert send.attributes["cloudevents.event_type"] == "OpsStatus.Operation.Succeeded"
    assert send.attributes["cloudevents.event_spec_version"] == "1.0"
    [step] = by_name(spans, "process ")
    assert step.attributes["ops_status.outcome"] == "Succeeded"
    assert step.attributes["ops_status.detection_lag"] == 1.0
    assert step.attributes["ops_status.watch.duration"] == 2.0
    for span in spans:
        assert not find_secrets(json.dumps(dict(span.attributes or {})))


def test_a_failed_send_marks_its_span_and_the_step_as_errors(settings: Settings) -> None:
    caller = new_trace_context()
    deps, outputs = wire(settings, [StatusRead("Running")])
    outputs.fail_next = 1
    message = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)

    with pytest.raises(ServiceBusSendError):
        handle_watch_message(message, deps)

    spans = spans_in_trace(caller.trace_id)
    [send] = by_name(spans, "send ")
    [step] = by_name(spans, "process ")
    for span in (send, step):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "ServiceBusSendError"
        # The exception's message is not recorded: an SDK error can quote a signed URL
        assert [event.name for event in span.events] == []
