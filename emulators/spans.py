"""Spans to a file, and back as a tree: how the demo shows each watch's trace.

The demo runs the CLI and the worker as child processes. Each is started as
``python -m emulators.spans DIR ARGS...``, which installs the OpenTelemetry SDK with a
tiny exporter (one JSON line per finished span, into ``DIR/<pid>.jsonl``) and then runs
``python -m ops_status ARGS...`` in the same process: the product code is unchanged and
uses only the OpenTelemetry API, exactly as under the Azure Monitor distro. The demo
reads the files back (``read_spans``), prints one tree per trace (``span_tree``) and
removes the directory.

Never deployed: the SDK is a development dependency.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["JsonLinesSpanExporter", "main", "read_spans", "span_tree"]


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_record(span)) + "\n" for span in spans)
        with self._lock, self._path.open("a", encoding="utf-8") as file:
            file.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is buffered: every export is written at once."""


def _record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "start": span.start_time,
        "end": span.end_time,
        "error": span.status.status_code.name == "ERROR",
        "attributes": dict(span.attributes or {}),
    }


def read_spans(directory: Path) -> list[dict[str, Any]]:
    """Every span the processes wrote into ``directory``, in start order."""
    spans = [
        json.loads(line)
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return sorted(spans, key=lambda s: s["start"] or 0)


def span_tree(spans: Iterable[dict[str, Any]], trace_id: str) -> list[str]:
    """One trace as indented lines, children under their parent in start order. A span
    whose parent was not recorded (a caller outside the demo) is shown as a root."""
    mine = [s for s in spans if s["trace_id"] == trace_id]
    ids = {s["span_id"] for s in mine}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in mine:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, prefix: str) -> None:
        below = children.get(parent, [])
        for n, span in enumerate(below):
            last = n == len(below) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            lines.append(f"{prefix}{branch}{_label(span)}")
            walk(span["span_id"], prefix + ("" if parent is None else ("   " if last else "│  ")))

    walk(None, "")
    return lines


def _label(span: dict[str, Any]) -> str:
    """The span's name and what it says, e.g. ``GET 429 throttled`` or ``process ... #2``."""
    name, attributes = span["name"], span["attributes"]
    words = [name]
    if name == "GET":
        words.append(str(attributes.get("http.response.status_code", attributes.get("error.type"))))
        if attributes.get("ops_status.throttled"):
            words.append("throttled")
    elif name.startswith("process "):
        if "ops_status.attempt" in attributes:
            words.append(f"#{attributes['ops_status.attempt']}")
        read = attributes.get("ops_status.arm_status") or attributes.get("ops_status.read_failure")
        if read:
            words.append(str(read))
        if attributes.get("messaging.servicebus.message.delivery_count", 1) > 1:
            words.append(f"(delivery {attributes['messaging.servicebus.message.delivery_count']})")
        if "ops_status.poll.delay" in attributes:
            words.append(f"→ next read in {attributes['ops_status.poll.delay']:.1f} s")
        elif "ops_status.outcome" in attributes:
            words.append(f"→ {attributes['ops_status.outcome']}")
    elif "cloudevents.event_type" in attributes:
        words.append(f"({attributes['cloudevents.event_type']})")
    if span["error"]:
        words.append("ERROR")
    if span["start"] is not None and span["end"] is not None:
        words.append(f"{(span['end'] - span['start']) / 1e6:.0f} ms")
    return "  ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emulators.spans DIR ARGS...``: ``python -m ops_status ARGS...``, its
    spans written to ``DIR``."""
    directory, *arguments = list(sys.argv[1:] if argv is None else argv)
    provider = TracerProvider()
    # Synchronous: a span is on disk when it ends, however the process is stopped later.
    exporter = JsonLinesSpanExporter(Path(directory) / f"{os.getpid()}.jsonl")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from ops_status.cli import main as ops_status

    try:
        return ops_status(arguments)
    finally:
        provider.shutdown()


if __name__ == "__main__":
    sys.exit(main())
