"""W3C Trace Context: read and write ``traceparent`` and ``tracestate`` values (pure).

No OpenTelemetry here: these are the rules of the W3C Trace Context recommendation
(https://www.w3.org/TR/trace-context/, sections 3.2 and 3.3), which every carrier the
product uses shares: the Service Bus application properties ``Diagnostic-Id`` /
``traceparent`` / ``tracestate``, the ``traceparent`` header on the ARM request, the
CloudEvents distributed-tracing extension attributes, and the ``TRACEPARENT`` /
``TRACESTATE`` environment variables a CI runner sets.

Whatever arrives from outside is only correlation, never an input that can fail a watch:
``parse_trace_context`` returns None for an invalid ``traceparent`` (the caller then starts
a new trace), and drops an invalid ``tracestate`` while keeping a valid ``traceparent``.

- ``traceparent`` = ``version-traceid-parentid-flags``: version ``00`` is exactly 55
  characters; a later version may append ``-...`` fields, which are ignored; version
  ``ff``, upper-case hex, and all-zero trace or parent ids are invalid.
- ``tracestate`` = up to 32 ``key=value`` members separated by commas (empty members
  allowed), keys ``[a-z][a-z0-9_*/-]{0,255}`` or ``tenant@system``, values of printable
  ASCII without ``,`` and ``=``, at most 256 characters, not ending in a space; a key at
  most once. A malformed one is dropped whole, as OpenTelemetry's propagator does.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_HEADER_LENGTH",
    "TraceContext",
    "new_trace_context",
    "parse_trace_context",
    "parse_traceparent",
    "parse_tracestate",
    "trace_context_from_properties",
]

# A traceparent is 55 characters today; a future version may add fields. tracestate is
# capped at 32 members of at most 256 + 256 characters; 512 is the length the spec asks
# every vendor to propagate. Anything longer from outside is not worth reading.
MAX_HEADER_LENGTH = 512
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
# Printable ASCII except "," and "="; the last character is not a space.
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_MAX_MEMBERS = 32
# Horizontal whitespace around a header value is not part of it (RFC 9110 OWS).
_OWS = " \t"


@dataclass(frozen=True)
class TraceContext:
    """A valid W3C trace context: what one participant tells the next.

    ``parent_id`` is the span id of the sender's span (the next participant's parent).
    """

    trace_id: str
    """32 lower-case hex digits, not all zero."""
    parent_id: str
    """16 lower-case hex digits, not all zero."""
    flags: int = 1
    """The trace-flags byte; bit 0 is *sampled* (the sender may have recorded)."""
    tracestate: str | None = None
    """The vendor list, already validated, or None."""

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` value, version 00."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags:02x}"


def parse_traceparent(value: object) -> TraceContext | None:
    """The trace context a ``traceparent`` value names, or None when it is not valid.

    Accepts ``str`` or ASCII ``bytes`` (an AMQP property may be either). Never raises.
    """
    text = _text(value)
    if text is None:
        return None
    match = _TRACEPARENT.fullmatch(text)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    return TraceContext(trace_id, parent_id, int(flags, 16))


def parse_tracestate(value: object) -> str | None:
    """A ``tracestate`` value normalised (members trimmed, empty ones dropped), or None when
    it is absent, empty or malformed. Never raises."""
    text = _text(value)
    if not text:
        return None
    members: list[str] = []
    keys: set[str] = set()
    for raw in text.split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        key, equals, item = member.partition("=")
        if not equals or not _KEY.fullmatch(key) or not _VALUE.fullmatch(item) or key in keys:
            return None
        keys.add(key)
        members.append(member)
    if not members or len(members) > _MAX_MEMBERS:
        return None
    return ",".join(members)


def parse_trace_context(traceparent: object, tracestate: object = None) -> TraceContext | None:
    """Both values together: None unless ``traceparent`` is valid; an invalid
    ``tracestate`` is dropped (the trace still continues)."""
    context = parse_traceparent(traceparent)
    if context is None:
        return None
    state = parse_tracestate(tracestate)
    return TraceContext(context.trace_id, context.parent_id, context.flags, state)


def trace_context_from_properties(properties: Mapping[Any, Any]) -> TraceContext | None:
    """The trace context of a Service Bus message's application properties.

    ``traceparent`` first, then ``Diagnostic-Id`` (what older Service Bus SDKs write,
    which the newer ones and the Functions host read too), as azure-servicebus's own
    ``get_receive_links`` does. Keys may be ``str`` or ``bytes`` (the Python SDK's receive
    side gives bytes). A ``Diagnostic-Id`` in the older hierarchical ``Request-Id`` form
    (``|abc.1.``) is not a traceparent and is ignored.
    """
    lookup: dict[str, object] = {}
    for key, value in properties.items():
        name = _text(key)
        if name is not None:
            lookup.setdefault(name, value)
    for name in ("traceparent", "Diagnostic-Id"):
        context = parse_trace_context(lookup.get(name), lookup.get("tracestate"))
        if context is not None:
            return context
    return None


def new_trace_context(
    *, flags: int = 1, randbits: Callable[[int], int] = secrets.randbits
) -> TraceContext:
    """A fresh trace: random 128-bit trace id and 64-bit parent id, never all zero.

    Used when no OpenTelemetry SDK records spans in this process and there is no trace
    to continue, so that the participants after us still share one trace id. ``flags``
    defaults to *sampled*: a participant that records (the function app with Azure
    Monitor) keeps the trace instead of dropping it for a parent that never decided.
    """
    trace_id = 0
    while trace_id == 0:
        trace_id = randbits(128)
    span_id = 0
    while span_id == 0:
        span_id = randbits(64)
    return TraceContext(f"{trace_id:032x}", f"{span_id:016x}", flags & 0xFF)


def _text(value: object) -> str | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > MAX_HEADER_LENGTH:
        return None
    return value.strip(_OWS)
