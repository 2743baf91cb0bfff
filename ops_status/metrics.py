"""WatchMetrics: the instruments that answer "are we keeping up?" (OpenTelemetry metrics API).

Only the API is used: with no SDK configured in the process every instrument is a no-op;
whoever configures the SDK (the Azure Monitor distro at start-up, a test's
``InMemoryMetricReader``) decides where the numbers go. Instruments are created once per
``WatchMetrics``; the process-wide one (``default_metrics``) is built on the global meter
provider, whose proxy instruments start recording once a provider is installed.

Where things are recorded, so each number has one source:

- everything about watches and steps from the handler's own results (``handler.py``):
  started and finished watches, reads per watch, watch duration, detection lag, throttled
  reads and the read budget ARM reported, token failures, send failures, handler duration;
- ARM read latency where the HTTP request is made (``arm.py``), around the request alone
  (not the token), like an HTTP client instrumentation measures it.

Names carry the ``ops_status.`` prefix, attributes use the semantic conventions' names
where one exists (``http.response.status_code``, ``messaging.destination.name``,
``error.type``). Not ``http.client.request.duration``: the Azure Monitor exporter treats
that name as an auto-collected standard metric and does not keep it in ``customMetrics``
(azure-monitor-opentelemetry-exporter, ``_constants._AUTOCOLLECTED_INSTRUMENT_NAMES``).
Attributes stay low-cardinality: no watch, operation or correlation ids (those are on
spans). The README's "Metrics" section lists every instrument.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.util.types import Attributes

from ops_status import __version__
from ops_status.request import is_plain_id

__all__ = ["METER_NAME", "WatchMetrics", "default_metrics", "pipeline_of"]

METER_NAME = "ops_status"
# The longest context.pipeline kept as an attribute: a name, not a run id.
_MAX_PIPELINE_LENGTH = 64

# Bucket advice (seconds or counts); backends that keep buckets use them, Azure Monitor
# keeps sum, count, min and max per export interval whatever the buckets.
_HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30)
_HANDLER_SECONDS = (*_HTTP_SECONDS, 60, 180, 300)
_WATCH_SECONDS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
_LAG_SECONDS = (0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_READS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
_BUDGET = (0, 5, 10, 25, 50, 100, 150, 200, 250, 500, 1000, 12000)


class WatchMetrics:
    """Every instrument ops-status records, and one method per thing that happened.

    Example::

        reader = InMemoryMetricReader()
        recorded = WatchMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))
        recorded.watch_started(pipeline="deploy-cache")
    """

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter(METER_NAME, __version__)
        self._started = meter.create_counter(
            "ops_status.watch.started",
            unit="{watch}",
            description="Submissions taken from the intake queue (rejected ones included).",
        )
        self._finished = meter.create_counter(
            "ops_status.watch.finished",
            unit="{watch}",
            description="Terminal events published, by outcome and reason.",
        )
        self._reads = meter.create_histogram(
            "ops_status.watch.reads",
            unit="{read}",
            description="Status reads a watch took, recorded when it finishes.",
            explicit_bucket_boundaries_advisory=_READS,
        )
        self._duration = meter.create_histogram(
            "ops_status.watch.duration",
            unit="s",
            description="From the intake queue accepting the submission to the terminal event.",
            explicit_bucket_boundaries_advisory=_WATCH_SECONDS,
        )
        self._lag = meter.create_histogram(
            "ops_status.watch.detection_lag",
            unit="s",
            description="From ARM's endTime to the terminal event being published.",
            explicit_bucket_boundaries_advisory=_LAG_SECONDS,
        )
        self._arm_duration = meter.create_histogram(
            "ops_status.arm.read.duration",
            unit="s",
            description="One status request to ARM, by HTTP status.",
            explicit_bucket_boundaries_advisory=_HTTP_SECONDS,
        )
        self._throttled = meter.create_counter(
            "ops_status.arm.throttled",
            unit="{read}",
            description="Status reads ARM answered with 429.",
        )
        self._remaining = meter.create_histogram(
            "ops_status.arm.remaining_reads",
            unit="{read}",
            description="x-ms-ratelimit-remaining-subscription-reads as ARM reported it.",
            explicit_bucket_boundaries_advisory=_BUDGET,
        )
        self._token_failures = meter.create_counter(
            "ops_status.token.failures",
            unit="{failure}",
            description="Status reads that got no ARM token.",
        )
        self._send_failures = meter.create_counter(
            "ops_status.send.failures",
            unit="{failure}",
            description="Service Bus sends that failed after the SDK's own retries.",
        )
        self._handler_duration = meter.create_histogram(
            "ops_status.handler.duration",
            unit="s",
            description="One message handled, from receipt to its follow-up sent (or failed).",
            explicit_bucket_boundaries_advisory=_HANDLER_SECONDS,
        )

    def watch_started(self, *, pipeline: str | None) -> None:
        self._started.add(1, _attributes({"ops_status.pipeline": pipeline}))

    def watch_finished(
        self,
        *,
        outcome: str,
        reason: str | None,
        pipeline: str | None,
        reads: int,
        duration: float | None,
        detection_lag: float | None,
    ) -> None:
        """A terminal event was published. ``duration`` and ``detection_lag`` in seconds;
        None when unknown (a rejection has no first-seen time; ARM gave no ``endTime``)."""
        common = {"ops_status.outcome": outcome, "ops_status.pipeline": pipeline}
        self._finished.add(1, _attributes({**common, "ops_status.reason": reason}))
        self._reads.record(reads, _attributes(common))
        if duration is not None:
            self._duration.record(max(duration, 0.0), _attributes(common))
        if detection_lag is not None:
            self._lag.record(detection_lag, _attributes(common))

    def arm_read(
        self,
        duration: float,
        *,
        status_code: int | None,
        error_type: str | None,
        server_address: str,
    ) -> None:
        self._arm_duration.record(
            duration,
            _attributes(
                {
                    "http.request.method": "GET",
                    "http.response.status_code": status_code,
                    "server.address": server_address,
                    "error.type": error_type,
                }
            ),
        )

    def read_observed(
        self,
        *,
        throttled: bool,
        token_failed: bool,
        remaining_reads: int | None,
        subscription_id: str,
    ) -> None:
        """What one status read said about ARM's budget and the identity."""
        subscription = {"ops_status.subscription_id": subscription_id}
        if throttled:
            self._throttled.add(1, subscription)
        if token_failed:
            self._token_failures.add(1)
        if remaining_reads is not None:
            self._remaining.record(remaining_reads, subscription)

    def send_failed(self, *, destination: str, error_type: str) -> None:
        self._send_failures.add(
            1, {"messaging.destination.name": destination, "error.type": error_type}
        )

    def message_handled(
        self, duration: float, *, destination: str, action: str, error_type: str | None = None
    ) -> None:
        self._handler_duration.record(
            duration,
            _attributes(
                {
                    "messaging.destination.name": destination,
                    "ops_status.action": action,
                    "error.type": error_type,
                }
            ),
        )


def pipeline_of(context: Mapping[str, Any] | None) -> str | None:
    """The ``pipeline`` a watch request's ``context`` names, when it is a short plain id
    (what the Azure DevOps recipe sets: ``--context pipeline=$BUILD_DEFINITIONNAME``).
    Anything else is dropped: metric attributes must stay few."""
    value = context.get("pipeline") if context is not None else None
    if is_plain_id(value) and len(value) <= _MAX_PIPELINE_LENGTH:
        return value
    return None


_default: WatchMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> WatchMetrics:
    """The process-wide instruments, on the global meter provider (built on first use)."""
    global _default  # noqa: PLW0603 - one set of instruments per process is the point
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = WatchMetrics()
    return _default


def _attributes(values: Mapping[str, str | int | None]) -> Attributes:
    return {key: value for key, value in values.items() if value is not None}
