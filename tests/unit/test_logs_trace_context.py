"""Log lines inside a span carry its trace and span ids; outside one they stay as they were."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from ops_status.logs import bind, log

LOGGER = logging.getLogger("ops_status.test_logs")


@pytest.fixture
def tracer() -> object:
    # A provider of its own, not the global one: nothing else in the process is changed.
    return TracerProvider().get_tracer("test")


def test_a_line_inside_a_span_ends_with_its_trace_and_span_id(
    tracer: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)

    with (
        bind(message_id="m-1", operation_id="op-1", correlation_id="c-1"),
        tracer.start_as_current_span("handle") as span,  # type: ignore[attr-defined]
    ):
        log(LOGGER, logging.INFO, "watch.read", status="Running")
    context = span.get_span_context()

    (record,) = caplog.records
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    assert record.getMessage() == (
        f"watch.read message_id=m-1 operation_id=op-1 correlation_id=c-1 status=Running "
        f"trace_id={trace_id} span_id={span_id}"
    )
    assert record.ops_status == {  # type: ignore[attr-defined]
        "message_id": "m-1",
        "operation_id": "op-1",
        "correlation_id": "c-1",
        "status": "Running",
        "trace_id": trace_id,
        "span_id": span_id,
    }


def test_a_line_outside_any_span_has_only_its_own_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)

    with bind(message_id="m-1"):
        log(LOGGER, logging.INFO, "watch.read", status="Running")

    (record,) = caplog.records
    assert record.getMessage() == "watch.read message_id=m-1 status=Running"
    assert "trace_id" not in record.ops_status  # type: ignore[attr-defined]


def test_an_invalid_span_context_adds_no_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    invalid = NonRecordingSpan(SpanContext(0, 0, is_remote=False, trace_flags=TraceFlags(0)))

    with use_span(invalid):
        log(LOGGER, logging.INFO, "watch.read")

    (record,) = caplog.records
    assert "trace_id" not in record.getMessage()
    assert record.ops_status == {}  # type: ignore[attr-defined]


def test_the_ids_are_those_of_the_innermost_span(
    tracer: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)

    with tracer.start_as_current_span("outer") as outer:  # type: ignore[attr-defined]
        with tracer.start_as_current_span("inner") as inner:  # type: ignore[attr-defined]
            log(LOGGER, logging.INFO, "inner.line")
        log(LOGGER, logging.INFO, "outer.line")

    inner_line, outer_line = (record.ops_status for record in caplog.records)  # type: ignore[attr-defined]
    assert inner_line["span_id"] == f"{inner.get_span_context().span_id:016x}"
    assert outer_line["span_id"] == f"{outer.get_span_context().span_id:016x}"
    assert inner_line["trace_id"] == outer_line["trace_id"]
