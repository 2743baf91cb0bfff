"""Telemetry export: traces, metrics and logs to Application Insights or OTLP, off by default.

The code records through the OpenTelemetry API only (``opentelemetry-api``), whose calls are
no-ops until an SDK is installed. ``configure_export`` installs one, once per process, when
the settings ask for it:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING``: the Azure Monitor OpenTelemetry distro
  (``configure_azure_monitor``), with a managed-identity credential when
  ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` says ``Authorization=AAD`` (Entra-only
  ingestion, as the template configures the component);
- ``OTEL_EXPORTER_OTLP_ENDPOINT``: the OpenTelemetry SDK with the OTLP/HTTP exporters
  (which read the rest of the ``OTEL_EXPORTER_OTLP_*`` settings themselves);
- both: one SDK pipeline feeding both, as the Functions host does with both settings;
- neither: nothing is installed and nothing is imported, so the cold path pays nothing.

The modules are imported inside the functions below, never at import time: the distro
and the SDK cost tens of milliseconds that a process without export must not pay
(``benchmarks/cold_start.py`` measures both ways; tests/integration/test_export.py checks
that no exporter module is loaded when neither setting is set).

In Azure Functions the host exports its own telemetry (host.json ``telemetryMode``) and
``PYTHON_ENABLE_OPENTELEMETRY=true`` makes the Python worker hand each invocation the
host's trace context; this module exports what the app itself records (README,
"Telemetry export").
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import MutableMapping
from typing import Any

from ops_status.errors import ConfigurationError
from ops_status.logs import log
from ops_status.settings import (
    APPINSIGHTS_CONNECTION_STRING,
    OTLP_ENDPOINT,
    IdentitySettings,
    TelemetrySettings,
)

__all__ = ["APPINSIGHTS", "OTLP", "configure_export"]

APPINSIGHTS = "appinsights"
OTLP = "otlp"

_logger = logging.getLogger(__name__)
_lock = threading.Lock()
_configured: tuple[str, ...] | None = None

# The distro instruments these libraries by default. The app records its own spans at
# its seams (one per handled message and per outbound call, STYLE.md), so the distro's
# would duplicate them (requests for ARM, azure_sdk for Service Bus and identity) and the
# web frameworks are not used at all. Unknown names are ignored by the distro.
_DISTRO_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)
# Resource detectors (OTEL_EXPERIMENTAL_RESOURCE_DETECTORS). The distro's default includes
# azure_vm, which probes the instance metadata endpoint (169.254.169.254, 0.2 s timeout) on
# every start; in Functions the worker itself chooses azure_functions. A value already in
# the environment wins.
_DETECTORS_ON_FUNCTIONS = "azure_functions"
_DETECTORS_ELSEWHERE = "otel"
_SERVICE_NAME = "ops-status"


def configure_export(
    settings: TelemetrySettings, *, environ: MutableMapping[str, str] | None = None
) -> tuple[str, ...]:
    """Install the exporters ``settings`` ask for; returns their names (empty: none).

    Idempotent: a second call returns what the first installed. When another component
    already installed an OpenTelemetry SDK (the Functions worker does with
    ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``), nothing is added, so nothing
    is exported twice. Never raises for an exporter that cannot reach its endpoint: the
    exporters send in background threads and retry on their own. Raises
    ``ConfigurationError`` naming the setting when export is asked for but its packages are
    not installed (``pip install .`` is the command line alone).

    Example::

        settings = load_settings()
        configure_export(settings.telemetry)   # function_app.py, at start-up
    """
    global _configured  # noqa: PLW0603 - the process has one set of providers
    if not settings.exports:
        return ()
    with _lock:
        if _configured is not None:
            return _configured
        env = os.environ if environ is None else environ
        if _sdk_already_installed():
            log(_logger, logging.WARNING, "telemetry.export_skipped", reason="sdk_already_set")
            _configured = ()
            return _configured
        on_functions = bool(env.get("FUNCTIONS_WORKER_RUNTIME"))
        env.setdefault(
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
            _DETECTORS_ON_FUNCTIONS if on_functions else _DETECTORS_ELSEWHERE,
        )
        try:
            if settings.appinsights_connection_string is not None:
                _configure_azure_monitor(settings, env)
            else:
                _configure_otlp(env)
        except ImportError as exc:
            setting = (
                APPINSIGHTS_CONNECTION_STRING
                if settings.appinsights_connection_string is not None
                else OTLP_ENDPOINT
            )
            raise ConfigurationError(
                setting,
                f"is set, but {exc.name or 'an exporter'} is not installed "
                "(pip install 'ops-status[export]')",
            ) from exc
        _configured = tuple(
            name
            for name, wanted in (
                (APPINSIGHTS, settings.appinsights_connection_string is not None),
                (OTLP, settings.otlp_endpoint is not None),
            )
            if wanted
        )
    log(_logger, logging.INFO, "telemetry.export", destinations=",".join(_configured))
    return _configured


def _sdk_already_installed() -> bool:
    from opentelemetry import trace

    # The API's placeholder until someone calls set_tracer_provider.
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _resource_attributes(env: MutableMapping[str, str]) -> dict[str, str]:
    # In Functions the azure_functions detector names the service after the app (the name
    # the host's own telemetry carries); OTEL_SERVICE_NAME, when set, is read by the SDK.
    if env.get("FUNCTIONS_WORKER_RUNTIME") or env.get("OTEL_SERVICE_NAME"):
        return {}
    return {"service.name": _SERVICE_NAME}


def _configure_azure_monitor(settings: TelemetrySettings, env: MutableMapping[str, str]) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry.sdk.resources import Resource

    options: dict[str, Any] = {
        "connection_string": settings.appinsights_connection_string,
        "resource": Resource.create(_resource_attributes(env)),
        "instrumentation_options": {name: {"enabled": False} for name in _DISTRO_INSTRUMENTATIONS},
        # Live metrics keeps a once-a-second connection to the Live Metrics service open
        # for the life of the process; queue-triggered work does not need it.
        "enable_live_metrics": False,
    }
    if settings.appinsights_entra:
        from ops_status.credential import create_credential

        # The same bounded managed-identity credential as the app's (15 s per token request,
        # no retries inside it): an identity endpoint that hangs cannot pile up exports.
        options["credential"] = create_credential(
            IdentitySettings(credential="managedidentity", client_id=settings.appinsights_client_id)
        )
    if settings.otlp_endpoint is not None:
        spans, records, readers = _otlp_pipeline()
        options.update(span_processors=spans, log_record_processors=records, metric_readers=readers)
    configure_azure_monitor(**options)


def _otlp_pipeline() -> tuple[list[Any], list[Any], list[Any]]:
    """Processors and readers that send to ``OTEL_EXPORTER_OTLP_ENDPOINT`` over HTTP."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return (
        [BatchSpanProcessor(OTLPSpanExporter())],
        [BatchLogRecordProcessor(OTLPLogExporter())],
        [PeriodicExportingMetricReader(OTLPMetricExporter())],
    )


def _configure_otlp(env: MutableMapping[str, str]) -> None:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create(_resource_attributes(env))
    spans, records, readers = _otlp_pipeline()
    tracer_provider = TracerProvider(resource=resource)
    for processor in spans:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    logger_provider = LoggerProvider(resource=resource)
    for record_processor in records:
        logger_provider.add_log_record_processor(record_processor)
    _logs.set_logger_provider(logger_provider)
    # On the root logger, as the distro does: every record that passes a logger's level
    # becomes an OpenTelemetry log record, with the current span's trace and span ids.
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
