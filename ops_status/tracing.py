"""Spans and trace-context propagation: one trace per watch (OpenTelemetry tracing API).

Only the API is used here; whoever starts the process configures the SDK and its
exporters (the Azure Monitor distro, a test's in-memory exporter, the demo's span file).
Without an SDK the API records nothing, but the trace context still travels: a context
that arrives is passed on unchanged, and where none arrives (``submit`` without a
``TRACEPARENT``) ids are generated (``traceparent.new_trace_context``), so the pipeline,
the function app and the subscribers share one trace id whoever of them records.

The shape of one watch's trace (names from the OpenTelemetry semantic conventions for
messaging, HTTP clients and CloudEvents)::

    ops-status submit                      INTERNAL  the CLI (child of TRACEPARENT if set)
    └─ send {intake queue}                 PRODUCER  its context is stamped on the message
       └─ process {intake queue}           CONSUMER  one step: attempt 1
          ├─ GET                           CLIENT    the ARM status read (traceparent sent)
          └─ send {polls queue}            PRODUCER  the next poll, stamped likewise
             └─ process {polls queue}      CONSUMER  attempt 2 ...
                └─ send {events topic}     PRODUCER  the terminal CloudEvent: its
                                                     traceparent extension is this span

The context goes on every message as Service Bus defines it (``Diagnostic-Id`` and
``traceparent``, plus ``tracestate``: azure-servicebus ``_common/tracing.py``
``trace_message``), in W3C format whatever propagator the process configured: the
carrier's format is fixed by Service Bus and the Functions host, not by us. A
``process`` span is a child of the message's creation context (the semantic conventions
allow it for single-message processing) and links to it; when the host already runs
the step inside a span of the same trace (the Functions host's own), that span is the
parent instead, and when it runs inside another trace, that one is linked.

Never put a secret on a span: no headers, no query string except ``api-version``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from ops_status import __version__
from ops_status.errors import OpsStatusError
from ops_status.traceparent import TraceContext, new_trace_context, parse_trace_context

__all__ = [
    "TRACER_NAME",
    "Outgoing",
    "consuming",
    "current_trace_context",
    "environment_trace_context",
    "error_type",
    "http_client_span",
    "producing",
    "service_bus_address",
    "set_attributes",
    "started_span",
    "status_url_for_span",
    "trace_context_of",
]

TRACER_NAME = "ops_status"
SERVICE_BUS = "servicebus"
# The default ``parent`` of a span: "the current span". A marker compared by identity.
_CURRENT = TraceContext("f" * 32, "f" * 16)


def _tracer() -> trace.Tracer:
    # Looked up per span, not at import: a provider installed later is still used.
    return trace.get_tracer(TRACER_NAME, __version__)


def trace_context_of(span: Span) -> TraceContext | None:
    """The W3C context of ``span`` (its ids, flags and tracestate), or None if invalid."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    state = context.trace_state.to_header() if context.trace_state else ""
    return TraceContext(
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        int(context.trace_flags),
        state or None,
    )


def current_trace_context() -> TraceContext | None:
    """The current span's context, as the next participant should see it."""
    return trace_context_of(trace.get_current_span())


def environment_trace_context(environ: Mapping[str, str]) -> TraceContext | None:
    """The caller's trace from ``TRACEPARENT`` / ``TRACESTATE`` (the OpenTelemetry
    convention for passing context to a child process, which CI tooling follows), or
    None when absent or invalid (an invalid one is ignored: a new trace starts)."""
    return parse_trace_context(environ.get("TRACEPARENT"), environ.get("TRACESTATE"))


def _remote(context: TraceContext, *, remote: bool = True) -> SpanContext:
    return SpanContext(
        trace_id=int(context.trace_id, 16),
        span_id=int(context.parent_id, 16),
        is_remote=remote,
        trace_flags=trace.TraceFlags(context.flags & 0xFF),
        trace_state=trace.TraceState.from_header([context.tracestate])
        if context.tracestate
        else trace.TraceState(),
    )


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: its class name (low cardinality, as the semantic
    conventions ask); for one of ours that wraps an SDK error (``ServiceBusSendError``
    from ``OperationTimeoutError``), the wrapped one's, which says more."""
    if isinstance(exc, OpsStatusError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


@contextlib.contextmanager
def started_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: TraceContext | None = _CURRENT,
    links: Sequence[Link] = (),
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> Iterator[Span]:
    """A span, current inside the block; ended (with ``error.type`` and an error status
    if the block raises) on exit. The exception itself is not recorded: its message could
    carry what a span must not (an SDK error quoting a URL with its signed query).

    ``parent``: a remote context to continue, ``None`` for a new trace, or (default) the
    current span. When the API is a no-op and there is nothing to continue, the span
    still gets a generated context, so what is sent from inside carries a trace id.
    """
    if parent is _CURRENT:
        context: Context | None = None
    elif parent is None:
        context = Context()  # an empty context: no parent
    else:
        context = trace.set_span_in_context(NonRecordingSpan(_remote(parent)))
    span = _tracer().start_span(
        name,
        context=context,
        kind=kind,
        attributes={k: v for k, v in (attributes or {}).items() if v is not None},
        links=links,
    )
    if not span.get_span_context().is_valid:
        # No SDK and no parent: the no-op API gives the invalid span. Make up the ids.
        span = NonRecordingSpan(_remote(new_trace_context(), remote=False))
    with trace.use_span(
        span, end_on_exit=True, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", error_type(exc))
            span.set_status(trace.Status(trace.StatusCode.ERROR, error_type(exc)))
            raise


def service_bus_address(
    namespace: str | None, connection_string: str | None
) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of the namespace, from the settings (the
    fully qualified namespace, or a connection string's ``Endpoint``); never the key."""
    host = namespace
    if host is None and connection_string:
        for part in connection_string.split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() == "endpoint":
                host = urlsplit(value.strip()).netloc or None
    if not host:
        return None, None
    name, _, port = host.partition(":")
    return name.lower(), int(port) if port.isdigit() else None


def _messaging(
    operation: str, destination: str, server: tuple[str | None, int | None]
) -> dict[str, AttributeValue | None]:
    return {
        "messaging.system": SERVICE_BUS,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "server.address": server[0],
        "server.port": server[1],
    }


@dataclass(frozen=True)
class Outgoing:
    """A ``send`` span in progress: ``context`` is what the message (and a CloudEvent's
    ``traceparent``/``tracestate``) must carry."""

    span: Span
    context: TraceContext

    def describe(
        self,
        *,
        message_id: str,
        conversation_id: str | None,
        body_size: int,
        cloudevent_type: str | None = None,
    ) -> None:
        """The message's own attributes, once it is built."""
        values: dict[str, AttributeValue | None] = {
            "messaging.message.id": message_id,
            "messaging.message.conversation_id": conversation_id,
            "messaging.message.body.size": body_size,
        }
        if cloudevent_type is not None:
            values.update(
                {
                    "cloudevents.event_id": message_id,
                    "cloudevents.event_type": cloudevent_type,
                    "cloudevents.event_spec_version": "1.0",
                }
            )
        set_attributes(self.span, values)


@contextlib.contextmanager
def producing(
    destination: str,
    *,
    server: tuple[str | None, int | None] = (None, None),
    parent: TraceContext | None = _CURRENT,
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> Iterator[Outgoing]:
    """A ``send {destination}`` PRODUCER span around building and sending one message.

    Its context is the message's creation context (one message per send: no separate
    "create" span, as the conventions recommend for single-message APIs).
    """
    with started_span(
        f"send {destination}",
        kind=SpanKind.PRODUCER,
        parent=parent,
        attributes={**_messaging("send", destination, server), **(attributes or {})},
    ) as span:
        context = trace_context_of(span)
        assert context is not None  # started_span always gives a valid context
        yield Outgoing(span, context)


@contextlib.contextmanager
def consuming(
    destination: str,
    *,
    creation: TraceContext | None,
    server: tuple[str | None, int | None] = (None, None),
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> Iterator[Span]:
    """A ``process {destination}`` CONSUMER span for one received message.

    Parent: the host's current span when it is in the message's trace (the Functions
    host's own span for this delivery); else the message's creation context; else the
    current span, or a new trace. The creation context is always linked; a current span
    of another trace is linked too, so neither correlation is lost.
    """
    ambient = trace.get_current_span().get_span_context()
    links: list[Link] = []
    parent: TraceContext | None = _CURRENT
    if creation is not None:
        links.append(Link(_remote(creation)))
        if not (ambient.is_valid and f"{ambient.trace_id:032x}" == creation.trace_id):
            parent = creation
            if ambient.is_valid:
                links.append(Link(ambient))
    elif not ambient.is_valid:
        parent = None
    with started_span(
        f"process {destination}",
        kind=SpanKind.CONSUMER,
        parent=parent,
        links=links,
        attributes={**_messaging("process", destination, server), **(attributes or {})},
    ) as span:
        yield span


def status_url_for_span(url: str) -> str:
    """``url.full`` for a status read: scheme, host, path and ``api-version`` only.

    An ``Azure-AsyncOperation`` URL may carry signed query parameters (ARM's ``t``, ``c``,
    ``s``, ``h``); none of them belongs in telemetry.
    """
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "api-version"]
    query = f"?{urlencode(kept)}" if kept else ""
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


@contextlib.contextmanager
def http_client_span(
    url: str, *, attributes: Mapping[str, AttributeValue | None] | None = None
) -> Iterator[Span]:
    """A ``GET`` CLIENT span for one HTTP request to ``url`` (HTTP client conventions)."""
    parts = urlsplit(url)
    with started_span(
        "GET",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": "GET",
            "server.address": parts.hostname,
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "url.full": status_url_for_span(url),
            **(attributes or {}),
        },
    ) as span:
        yield span


def set_attributes(span: Span, values: Mapping[str, AttributeValue | None]) -> None:
    """Set every attribute whose value is not None (None means "unknown", not a value)."""
    for key, value in values.items():
        if value is not None:
            span.set_attribute(key, value)
