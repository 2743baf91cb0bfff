"""Structured log lines: every line carries the message, operation and correlation ids.

The handler binds the ids of the message it works on (``bind``); ``log`` renders them,
plus the line's own fields, as ``key=value`` pairs in the message text (what the
Functions host and Application Insights keep) and as ``extra`` attributes (what a
JSON formatter in the standalone worker picks up). Context lives in a ``ContextVar``,
so concurrent handlers on the host's thread pool never see each other's ids.

Inside a valid OpenTelemetry span a line also carries ``trace_id`` and ``span_id`` (hex,
as W3C ``traceparent`` writes them), after its other fields, so a log line found in any
sink leads to its trace.

Never pass a token, key or connection string as a field.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["SDK_LOGGERS", "bind", "log", "quiet_sdk_loggers"]

# The SDKs log every AMQP link, HTTP request and retried error at INFO: about 23 lines per
# cold invocation, each an Application Insights trace under host.json's Function level.
SDK_LOGGERS = ("azure", "uamqp", "msal", "urllib3")


def quiet_sdk_loggers(level: int = logging.WARNING) -> None:
    """Let the SDKs' loggers through only from ``level`` up (ours stay as configured)."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(level)


_context: ContextVar[dict[str, Any] | None] = ContextVar("ops_status_log_context", default=None)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` (message_id, operation_id, correlation_id, ...) to every line inside."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Write one line: ``event key=value ...`` with the bound ids first."""
    if not logger.isEnabledFor(level):
        return
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    merged.update(_trace_fields())
    rendered = " ".join(f"{key}={_render(value)}" for key, value in merged.items())
    logger.log(level, "%s %s", event, rendered, extra={"ops_status": merged})


def _trace_fields() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, or nothing outside a valid span."""
    # A span can only be current once something imported the tracing API (the handler's
    # spans, the Functions worker's context propagation, an exporter). Until then there is
    # nothing to find, and importing it here would put it on every process's cold path.
    if "opentelemetry.trace" not in sys.modules:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(context.trace_id),
        "span_id": trace.format_span_id(context.span_id),
    }


# What forces quoting: whitespace (str.isspace's set, as re's \s is for str), '"' or '='.
# One regex search instead of a Python loop per character: logging is on every message.
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _render(value: Any) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
