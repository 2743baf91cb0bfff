"""emulators.spans: the demo's span file and its trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from emulators.spans import JsonLinesSpanExporter, read_spans, span_tree
from ops_status.traceparent import new_trace_context

ROOT = Path(__file__).parents[2]
SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"


def test_spans_written_as_json_lines_come_back_as_a_tree(tmp_path: Path) -> None:
    # Given spans of one trace recorded through the file exporter (a private provider)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(tmp_path / "1.jsonl")))
    tracer = provider.get_tracer("test")
    step = {"ops_status.attempt": 1, "ops_status.arm_status": "Creating"}
    read = {"http.response.status_code": 429, "ops_status.throttled": True}
    with (
        tracer.start_as_current_span("ops-status submit") as root,
        tracer.start_as_current_span("send intake", kind=SpanKind.PRODUCER),
        tracer.start_as_current_span("process intake", attributes=step),
    ):
        with tracer.start_as_current_span("GET", attributes=read):
            pass
        with tracer.start_as_current_span("send polls"):
            pass
    provider.shutdown()
    trace_id = f"{root.get_span_context().trace_id:032x}"

    # When they are read back
    spans = read_spans(tmp_path)
    lines = span_tree(spans, trace_id)

    # Then each span sits under its parent, in start order, saying what it did
    expected = [
        "ops-status submit  ",
        "└─ send intake  ",
        "   └─ process intake  ",
        "      ├─ GET  ",
        "      └─ send polls  ",
    ]
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), lines
    assert "  #1  Creating  " in lines[2]
    assert "GET  429  throttled" in lines[3]
    assert span_tree(spans, "0" * 32) == []


def test_the_wrapper_records_the_cli_spans_in_the_callers_trace(tmp_path: Path) -> None:
    # Given a caller's trace passed the OpenTelemetry way, to a child process
    caller = new_trace_context()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPS_STATUS_")},
        "TRACEPARENT": caller.traceparent,
        "OPS_STATUS_ARM_ENDPOINT": "https://management.azure.com",
        "PYTHONPATH": str(ROOT),
    }

    # When `submit --dry-run` runs through the wrapper
    done = subprocess.run(
        [
            sys.executable, "-m", "emulators.spans", str(tmp_path),
            "submit", "--dry-run", "--json", "--subscription", SUBSCRIPTION,
            "--location", "westus", "--operation-id", "op-1", "--correlation-id", "c-1",
        ],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    # Then its span went to the file, in the caller's trace, and submit printed that trace
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["traceId"] == caller.trace_id
    [span] = read_spans(tmp_path)
    assert span["name"] == "ops-status submit"
    assert (span["trace_id"], span["parent_id"]) == (caller.trace_id, caller.parent_id)
