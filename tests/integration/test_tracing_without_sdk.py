"""Without an OpenTelemetry SDK (a pipeline's plain ``pip install``, a host without the
distro) nothing is recorded, yet the trace context still travels. Checked in a fresh
interpreter: the test process itself has the SDK installed (tests.telemetry)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]

PROBE = textwrap.dedent(
    """
    import json, sys
    from dataclasses import replace
    from opentelemetry import trace
    from ops_status import tracing
    from ops_status.bootstrap import build_dependencies
    from ops_status.handler import handle_watch_message
    from ops_status.observation import StatusRead
    from ops_status.settings import load_settings
    from ops_status.traceparent import parse_traceparent
    from tests.conftest import BASE_ENVIRONMENT, sample_bytes
    from tests.fakes import ENQUEUED, RecordingOutputs, ScriptedStatusReader, intake_message

    caller = parse_traceparent(sys.argv[1])
    with tracing.started_span("alone") as alone:
        fresh = tracing.trace_context_of(alone)
        recording = alone.is_recording()
    outputs = RecordingOutputs()
    deps = build_dependencies(
        load_settings(BASE_ENVIRONMENT),
        status_reader=ScriptedStatusReader([StatusRead("Running")]),
        outputs=outputs,
        clock=lambda: ENQUEUED,
    )
    message = replace(intake_message(sample_bytes("watch-parts.json")), trace_context=caller)
    handle_watch_message(message, deps)
    handle_watch_message(intake_message(sample_bytes("watch-parts.json"), sequence_number=2), deps)
    print(json.dumps({
        "provider": type(trace.get_tracer_provider()).__name__,
        "recording": recording,
        "fresh": fresh.traceparent if fresh else None,
        "continued": outputs.scheduled[0][0].trace.traceparent,
        "started": outputs.scheduled[1][0].trace.traceparent,
    }))
    """
)


def test_without_an_sdk_a_context_is_passed_on_and_a_missing_one_is_made_up() -> None:
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    done = subprocess.run(
        [sys.executable, "-c", PROBE, caller],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["provider"] == "ProxyTracerProvider"  # no SDK: the API's no-op
    assert seen["recording"] is False
    # A span with nothing to continue still has ids, so what it sends carries a trace
    assert seen["fresh"] is not None
    # A message's context goes on unchanged (nothing recorded in between to point at)
    assert seen["continued"] == caller
    # A submission without one starts a trace all the same, sampled for whoever records
    assert seen["started"] != caller
    assert seen["started"].endswith("-01")
