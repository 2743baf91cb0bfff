"""One watch is one trace: ``submit`` → worker → event, through the real SDKs on the local stack.

The OpenTelemetry SDK records in this process (``tests.telemetry``): ``submit`` runs
in-process through the CLI's ``main``, the worker on threads, so every span lands in one
in-memory exporter. The trace context crosses Service Bus only as the application
properties the adapters stamp and read back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from emulators.arm import Step
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE
from ops_status.bootstrap import build_dependencies, create_service_bus_client
from ops_status.cli import main
from ops_status.handler import HandlingResult, handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import SDK_LOGGERS
from ops_status.traceparent import (
    new_trace_context,
    parse_traceparent,
    trace_context_from_properties,
)
from ops_status.worker import Worker
from tests.contracts import assert_valid_event
from tests.e2e.conftest import E2E, SUBSCRIPTION
from tests.secrets import find_secrets
from tests.telemetry import hex_id, install_tracing, spans_in_trace


@pytest.fixture(autouse=True)
def sdk_tracing_and_logger_levels() -> Iterator[None]:
    """The SDK records; the CLI's ``main`` quiets the SDK loggers process-wide: undo that."""
    install_tracing()
    saved = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def submit(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], operation_id: str
) -> dict[str, Any]:
    """``ops-status submit --json`` in this process, with a pipeline's connection string."""
    for name in (
        "ServiceBusConnection__fullyQualifiedNamespace",
        "ServiceBusConnection__credential",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ServiceBusConnection", e2e.stack.pipeline_connection_string)
    monkeypatch.setenv("OPS_STATUS_INTAKE_QUEUE", INTAKE_QUEUE)
    monkeypatch.setenv("OPS_STATUS_ARM_ENDPOINT", e2e.settings.arm_endpoint)
    monkeypatch.setenv("OPS_STATUS_SUBMIT_HISTORY", "")
    capsys.readouterr()
    code = main(
        [
            "submit", "--subscription", SUBSCRIPTION, "--location", "westus",
            "--operation-id", operation_id, "--correlation-id", f"trace-{operation_id}", "--json",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    document: dict[str, Any] = json.loads(out)
    return document


@contextmanager
def worker(e2e: E2E, handler: Callable[..., object]) -> Iterator[None]:
    """The real worker on threads, wired as ``running_worker`` wires it, with a handler of
    choice and a quicker poll policy (the production code; the trace is the point here)."""
    policy = replace(e2e.settings.policy, min_delay=0.25, max_delay=0.5, lead=0.0)
    settings = replace(e2e.settings, policy=policy)
    dependencies = build_dependencies(settings)
    client = create_service_bus_client(settings, dependencies.credential)
    queues = {Queue.INTAKE: settings.intake_queue, Queue.POLLS: settings.polls_queue}
    running = Worker(client, queues, dependencies, concurrency=2, handler=handler)
    thread = threading.Thread(target=running.run, name="trace-e2e-worker")
    thread.start()
    try:
        yield
    finally:
        running.stop()
        thread.join(timeout=30)
        client.close()
        dependencies.outputs.close()  # type: ignore[attr-defined]


def events(e2e: E2E, count: int, timeout: float = 20.0) -> dict[str, tuple[dict[str, Any], Any]]:
    """The first ``count`` events on the ``all`` subscription by operation id (completed),
    without waiting for strays."""
    found: dict[str, tuple[dict[str, Any], Any]] = {}
    deadline = time.monotonic() + timeout
    with e2e.client.get_subscription_receiver(EVENTS_TOPIC, "all") as receiver:
        while len(found) < count and time.monotonic() < deadline:
            for message in receiver.receive_messages(max_message_count=count, max_wait_time=0.5):
                receiver.complete_message(message)
                event = json.loads(b"".join(message.body))
                found[event["data"]["operationId"]] = (event, message)
    assert len(found) == count, f"events arrived for {sorted(found)} only"
    return found


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def span_id(span: ReadableSpan) -> str:
    return hex_id(span.context.span_id, 16)


def parent_id(span: ReadableSpan) -> str | None:
    return hex_id(span.parent.span_id, 16) if span.parent is not None else None


def test_each_watch_is_one_trace_from_submit_to_its_event_even_across_a_redelivery(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two watches on one stack (one worker start and stop for both, to keep it quick):
    ``op-trace`` submitted from a CI step that passes its trace (``TRACEPARENT``),
    ``op-redo`` without one, and the host dies once after its second step sent the next
    poll, before completing the message (Service Bus redelivers it at once)."""
    # Given an operation that runs for two reads, and one that runs for three
    e2e.stack.arm.script("op-trace", [Step.running(repeat=2), Step.succeeded()])
    e2e.stack.arm.script("op-redo", [Step.running(repeat=3), Step.succeeded()])
    crashed = threading.Event()

    def crashing_once(message: InboundMessage, dependencies: Any) -> HandlingResult:
        result = handle_watch_message(message, dependencies)
        redo = message.queue is Queue.POLLS and b'"op-redo"' in message.body
        if redo and result.polls == 2 and not crashed.is_set():
            crashed.set()
            raise RuntimeError("host died between send and complete")
        return result

    # When the pipelines submit, the first inside its CI step's trace, and the worker
    # watches both to their ends
    caller = new_trace_context()
    monkeypatch.setenv("TRACEPARENT", caller.traceparent)
    traced = submit(e2e, monkeypatch, capsys, "op-trace")
    monkeypatch.delenv("TRACEPARENT")
    untraced = submit(e2e, monkeypatch, capsys, "op-redo")
    with worker(e2e, crashing_once):
        received = events(e2e, 2)

    # Then op-trace is one trace, the caller's, whose id submit printed
    assert traced["traceId"] == caller.trace_id
    spans = spans_in_trace(caller.trace_id)
    [root] = named(spans, "ops-status submit")
    assert parent_id(root) == caller.parent_id
    [intake_send] = named(spans, f"send {INTAKE_QUEUE}")
    assert parent_id(intake_send) == span_id(root)
    assert traced["traceparent"].split("-")[2] == span_id(intake_send)
    # ... one process span per attempt, in order, each the child of the send before it
    steps = [s for s in spans if s.name.startswith("process ")]
    assert [s.attributes["ops_status.attempt"] for s in steps] == [1, 2, 3]
    assert [s.name for s in steps] == [f"process {INTAKE_QUEUE}"] + [f"process {POLLS_QUEUE}"] * 2
    poll_sends = named(spans, f"send {POLLS_QUEUE}")
    assert [parent_id(s) for s in steps] == [span_id(intake_send)] + [
        span_id(s) for s in poll_sends
    ]
    # ... one read span per attempt, in order, inside its step, its context sent to ARM
    reads = named(spans, "GET")
    assert [r.attributes["ops_status.attempt"] for r in reads] == [1, 2, 3]
    assert [parent_id(r) for r in reads] == [span_id(s) for s in steps]
    arm_saw = [
        parse_traceparent(r.headers["traceparent"]) for r in e2e.stack.arm.requests_for("op-trace")
    ]
    assert [(c.trace_id, c.parent_id) if c else None for c in arm_saw] == [
        (caller.trace_id, span_id(r)) for r in reads
    ]
    # ... and its event continues the same trace: the traceparent is the last send span's
    event, message = received["op-trace"]
    assert_valid_event(event)
    [event_send] = named(spans, f"send {EVENTS_TOPIC}")
    published = parse_traceparent(event["traceparent"])
    assert published is not None
    assert (published.trace_id, published.parent_id) == (caller.trace_id, span_id(event_send))
    assert parent_id(event_send) == span_id(steps[-1])
    carried = trace_context_from_properties(message.application_properties)
    assert carried is not None
    assert carried.traceparent == event["traceparent"]
    diagnostic_id = message.application_properties[b"Diagnostic-Id"]
    assert diagnostic_id in (event["traceparent"], event["traceparent"].encode())
    # ... and no span carries a token, a key or a signature
    for span in spans:
        assert not find_secrets(json.dumps(dict(span.attributes or {}))), span.name

    # And op-redo, submitted without a trace, got its own, which the redelivery did not break
    assert crashed.is_set()
    assert untraced["traceId"] != caller.trace_id
    spans = spans_in_trace(untraced["traceId"])
    [root] = named(spans, "ops-status submit")
    assert root.parent is None
    # ... the redelivered step ran beside its first run, under the same send span
    second = [
        s
        for s in spans
        if s.name.startswith("process ") and s.attributes["ops_status.attempt"] == 2
    ]
    assert [s.attributes["messaging.servicebus.message.delivery_count"] for s in second] == [1, 2]
    assert len({parent_id(s) for s in second}) == 1
    # ... every span's parent is in the trace (nothing orphaned) except submit's
    ids = {span_id(s) for s in spans}
    assert all(parent_id(s) in ids for s in spans if s is not root)
    # ... and the event is in the trace, published from one of its send spans
    event, _ = received["op-redo"]
    assert event["data"]["status"] == "Succeeded"
    published = parse_traceparent(event["traceparent"])
    assert published is not None
    assert published.trace_id == untraced["traceId"]
    assert published.parent_id in {span_id(s) for s in named(spans, f"send {EVENTS_TOPIC}")}
