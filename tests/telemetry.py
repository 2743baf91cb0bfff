"""The OpenTelemetry SDK as the tests see it: spans in memory, metrics from a reader.

Product code uses the API only; here the real SDK records. A tracer provider can be set
once per process (the API refuses a second one), so ``spans()`` installs one on first
use with an ``InMemorySpanExporter`` and every test picks its own spans out by trace id:
tests running before or beside it in the same process cannot disturb it. Metrics need no
global state: ``recorded_metrics()`` gives a ``WatchMetrics`` on a private provider and
reads what it recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ops_status.metrics import WatchMetrics

__all__ = ["Recorded", "hex_id", "install_tracing", "recorded_metrics", "spans_in_trace"]

_lock = threading.Lock()
_exporter: InMemorySpanExporter | None = None


def install_tracing() -> InMemorySpanExporter:
    """The process's in-memory span exporter, installing the SDK provider on first call."""
    global _exporter  # noqa: PLW0603 - one provider per process is what the API allows
    with _lock:
        if _exporter is None:
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            # Simple (synchronous) processor: a span is readable the moment it ends.
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            assert trace.get_tracer_provider() is provider, "another tracer provider was set"
            _exporter = exporter
        return _exporter


def hex_id(value: int, width: int = 32) -> str:
    return f"{value:0{width}x}"


def spans_in_trace(trace_id: str) -> list[ReadableSpan]:
    """Every finished span of one trace, in start order."""
    exporter = install_tracing()
    found = [s for s in exporter.get_finished_spans() if hex_id(s.context.trace_id) == trace_id]
    return sorted(found, key=lambda s: s.start_time or 0)


@dataclass
class Recorded:
    """A ``WatchMetrics`` and the reader behind it."""

    metrics: WatchMetrics
    reader: InMemoryMetricReader

    def points(self, name: str) -> list[Any]:
        """Every data point of the instrument ``name`` (empty when nothing was recorded)."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def total(self, name: str, **attributes: Any) -> float:
        """A counter's sum (a histogram's count) over the points whose attributes include
        ``attributes`` (dots in names written as ``__``)."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in wanted.items()):
                total += point.count if hasattr(point, "bucket_counts") else point.value
        return total

    def values(self, name: str) -> Iterable[tuple[dict[str, Any], Any]]:
        return [(dict(p.attributes), p) for p in self.points(name)]


def recorded_metrics() -> Recorded:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    return Recorded(WatchMetrics(provider.get_meter("tests")), reader)
