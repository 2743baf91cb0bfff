"""The ARM read as a span and a metric, over real HTTP, through the real managed identity."""

from __future__ import annotations

import json

from opentelemetry.trace import SpanKind, StatusCode

from emulators.arm import Step
from ops_status import tracing
from ops_status.arm import ArmClient
from ops_status.credential import create_credential
from ops_status.request import parse_watch_request
from ops_status.traceparent import parse_traceparent
from tests.integration.conftest import SUBSCRIPTION, ArmStack
from tests.secrets import find_secrets
from tests.telemetry import Recorded, hex_id, install_tracing, recorded_metrics, spans_in_trace


def client(stack: ArmStack, recorded: Recorded) -> ArmClient:
    return ArmClient(
        stack.settings.arm_endpoint, create_credential(stack.settings), metrics=recorded.metrics
    )


def test_a_status_read_is_a_get_span_whose_context_goes_to_arm(stack: ArmStack) -> None:
    # Given a status URL with signed query parameters, as ARM hands some out
    install_tracing()
    recorded = recorded_metrics()
    stack.arm.script("op-1", [Step.succeeded()])
    url = (
        f"{stack.arm.endpoint}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Cache/locations/"
        "westus/operationsStatus/op-1?api-version=2025-07-01&t=638&c=MIIHcert&s=c2lnbmF0dXJl&h=abc"
    )
    request = parse_watch_request(
        json.dumps({"statusUrl": url}).encode(), arm_endpoint=stack.settings.arm_endpoint
    )

    # When it is read inside a step's span
    with tracing.started_span("step") as step:
        client(stack, recorded).get_operation_status(request)
    trace_id = hex_id(step.get_span_context().trace_id)

    # Then the read is a GET client span in that trace, and ARM got its traceparent
    [read] = [s for s in spans_in_trace(trace_id) if s.name == "GET"]
    assert read.kind is SpanKind.CLIENT
    assert read.parent is not None
    assert read.parent.span_id == step.get_span_context().span_id
    [seen] = stack.arm.requests_for("op-1")
    sent = parse_traceparent(seen.headers["traceparent"])
    assert sent is not None
    assert (sent.trace_id, sent.parent_id) == (trace_id, hex_id(read.context.span_id, 16))
    attributes = dict(read.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == stack.arm.port
    # ... url.full keeps api-version only: no signed parameter reaches telemetry
    assert attributes["url.full"] == url.split("&", 1)[0]
    assert attributes["ops_status.arm_status"] == "Succeeded"
    assert attributes["ops_status.attempt"] == 1
    assert "error.type" not in attributes
    assert not find_secrets(json.dumps(attributes))
    assert stack.arm.expected_token not in json.dumps(attributes)
    # ... and its duration is recorded by status code
    [point] = recorded.points("ops_status.arm.read.duration")
    assert point.count == 1
    assert point.attributes == {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
    }


def test_a_throttled_read_is_an_error_span_with_its_status_code(stack: ArmStack) -> None:
    install_tracing()
    recorded = recorded_metrics()
    stack.arm.script("op-2", [Step.throttled(retry_after="7")])
    request = parse_watch_request(
        json.dumps(stack.parts("op-2")).encode(), arm_endpoint=stack.settings.arm_endpoint
    )

    with tracing.started_span("step") as step:
        client(stack, recorded).get_operation_status(request)

    [read] = [
        s for s in spans_in_trace(hex_id(step.get_span_context().trace_id)) if s.name == "GET"
    ]
    assert read.status.status_code is StatusCode.ERROR
    assert read.attributes["error.type"] == "429"
    assert read.attributes["http.response.status_code"] == 429
    assert read.attributes["ops_status.throttled"] is True
    assert read.attributes["ops_status.retry_after"] == 7.0
    assert recorded.total("ops_status.arm.read.duration", http__response__status_code=429) == 1


def test_an_unreachable_arm_is_a_span_without_status_code(stack: ArmStack) -> None:
    install_tracing()
    recorded = recorded_metrics()
    request = parse_watch_request(
        json.dumps(stack.parts("op-3")).encode(), arm_endpoint=stack.settings.arm_endpoint
    )
    arm = client(stack, recorded)
    arm.get_operation_status(request)  # a token now, while the identity endpoint answers
    stack.arm.stop()

    with tracing.started_span("step") as step:
        arm.get_operation_status(request)

    [read] = [
        s for s in spans_in_trace(hex_id(step.get_span_context().trace_id)) if s.name == "GET"
    ]
    assert read.attributes["error.type"] == "ConnectionError"
    assert "http.response.status_code" not in read.attributes
    assert recorded.total("ops_status.arm.read.duration", error__type="ConnectionError") == 1
