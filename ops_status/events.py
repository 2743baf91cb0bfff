"""Outbound messages: the terminal CloudEvent, the rejection event, the next watch.

Everything here is pure: it turns decisions into ``OutboundMessage`` values (body,
MessageId, properties) that the Service Bus adapter sends as they are.

MessageIds are deterministic, which is what makes at-least-once safe: Service Bus
duplicate detection drops a second message with the same id, so a redelivered step
can neither fork a second polling chain nor publish a second terminal event.

- next poll (polls queue): ``{watch_id}.{attempt}``
- terminal event (topic):  ``{watch_id}.final`` (one per watch, whatever the outcome)
- rejection (topic):       ``{delivery_key}.final`` (one per submission: the key of the
  refused message, see ``InboundMessage.delivery_key``; at intake it is the watch id the
  submission would have had)

Trace context: each builder takes the ``trace`` of the ``send`` span that will carry the
message (``tracing.producing``). It travels as ``OutboundMessage.trace`` (the Service Bus
adapter stamps ``Diagnostic-Id``/``traceparent``/``tracestate`` from it), and a CloudEvent
also carries it in its envelope, as the CloudEvents distributed-tracing extension
(``traceparent``, ``tracestate``), so a subscriber continues the same trace.

The watch id comes from the broker's identity of the intake message, so every
submission, even of the same operation with the same correlation id, gets its own chain
and its own terminal event. Pipelines cannot send to the polls queue or the topic, so no
one can pre-send an id to suppress a follow-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import unquote, urlsplit

from ops_status.clock import format_time
from ops_status.decision import FinalStatus, Finish, Reschedule
from ops_status.jsontext import json_object
from ops_status.request import WatchRequest, is_plain_id
from ops_status.traceparent import TraceContext

__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "EventType",
    "OutboundMessage",
    "build_rejection_event",
    "build_terminal_event",
    "build_watch_message",
    "watch_message_id",
]

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
WATCH_CONTENT_TYPE = "application/json"
# Service Bus Standard refuses messages over 256 KB (body, properties and headers).
# The body gets 200 KB so properties and AMQP framing always fit in the rest.
MAX_EVENT_BODY_BYTES = 200 * 1024
MAX_RAW_BODY_CHARS = 16 * 1024
TRUNCATION_MARKER = "ops-status: truncated to fit a 256 KB Service Bus message"


class EventType(str, Enum):
    """The CloudEvents ``type`` of every event ops-status publishes."""

    SUCCEEDED = "OpsStatus.Operation.Succeeded"
    FAILED = "OpsStatus.Operation.Failed"
    CANCELED = "OpsStatus.Operation.Canceled"
    TIMED_OUT = "OpsStatus.Operation.TimedOut"
    REJECTED = "OpsStatus.Watch.Rejected"


_TYPE_BY_STATUS = {
    FinalStatus.SUCCEEDED: EventType.SUCCEEDED,
    FinalStatus.FAILED: EventType.FAILED,
    FinalStatus.CANCELED: EventType.CANCELED,
    FinalStatus.TIMED_OUT: EventType.TIMED_OUT,
}


@dataclass(frozen=True)
class OutboundMessage:
    """One Service Bus message, ready to send."""

    body: bytes
    message_id: str
    content_type: str
    subject: str | None = None
    correlation_id: str | None = None
    application_properties: Mapping[str, str | int] = field(default_factory=dict)
    trace: TraceContext | None = None
    """The creation context the adapter stamps on the message (W3C Trace Context)."""


def watch_message_id(request: WatchRequest) -> str:
    """The MessageId of the queue message that carries ``request`` at its current attempt."""
    attempt = request.state.attempt if request.state is not None else 0
    return f"{request.watch_key}.{attempt}"


def build_watch_message(
    action: Reschedule, *, trace: TraceContext | None = None
) -> OutboundMessage:
    """The next poll: same request, advanced poll state, deterministic id."""
    request = action.next_request
    return OutboundMessage(
        body=json.dumps(request.to_body(), separators=(",", ":")).encode(),
        message_id=watch_message_id(request),
        content_type=WATCH_CONTENT_TYPE,
        subject="poll",
        correlation_id=request.correlation_id,
        application_properties={
            "operationId": request.target.operation_id,
            "attempt": request.state.attempt if request.state else 0,
            "watchId": request.watch_key,
        },
        trace=trace,
    )


def build_terminal_event(
    action: Finish, *, arm_endpoint: str, now: datetime, trace: TraceContext | None = None
) -> OutboundMessage:
    """The one CloudEvent that ends a watch, kept under the Service Bus size limit."""
    request, outcome = action.request, action.outcome
    target, state = request.target, request.state
    event_type = _TYPE_BY_STATUS[outcome.status]
    message_id = f"{request.watch_key}.final"
    data: dict[str, Any] = {
        "operationId": target.operation_id,
        "operationName": outcome.operation_name,
        "resourceId": outcome.resource_id,
        "statusUrl": arm_endpoint + target.status_path,
        "subscriptionId": target.subscription_id,
        "location": target.location,
        "provider": target.provider,
        "status": outcome.status.value,
        "reason": outcome.reason.value if outcome.reason else None,
        "armStatus": outcome.arm_status,
        "detail": outcome.detail,
        "startTime": outcome.start_time,
        "endTime": outcome.end_time,
        "percentComplete": outcome.percent_complete,
        "firstSeen": format_time(state.first_seen) if state else None,
        "finishedAt": format_time(now),
        "polls": state.attempt if state else 0,
        "correlationId": request.correlation_id,
        "watchId": request.watch_key,
        "submissionId": request.submission_id,
        "context": dict(request.context) if request.context is not None else None,
        "error": dict(outcome.error) if outcome.error is not None else None,
    }
    properties: dict[str, str | int] = {
        "eventType": event_type.value,
        "status": outcome.status.value,
        "subscriptionId": target.subscription_id,
        "operationId": target.operation_id,
        "polls": data["polls"],
        "watchId": request.watch_key,
    }
    if request.submission_id:
        properties["submissionId"] = request.submission_id
    if target.location:
        properties["location"] = target.location
    if outcome.reason:
        properties["reason"] = outcome.reason.value
    if request.correlation_id:
        properties["correlationId"] = request.correlation_id
    envelope = _cloudevent(
        event_id=message_id,
        event_type=event_type,
        source=target.status_path.split("?", 1)[0],
        subject=target.operation_id,
        now=now,
        data=data,
        trace=trace,
    )
    return OutboundMessage(
        body=_fit(envelope),
        message_id=message_id,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
        subject=event_type.value,
        correlation_id=request.correlation_id,
        application_properties=properties,
        trace=trace,
    )


def build_rejection_event(
    raw_body: bytes,
    errors: list[str],
    *,
    key: str,
    now: datetime,
    delivery_id: str | None = None,
    submission_id: str | None = None,
    watch_id: str | None = None,
    trace: TraceContext | None = None,
) -> OutboundMessage:
    """The event that tells a pipeline its watch request was refused, and why.

    ``key`` is the refused message's ``delivery_key`` at intake: one rejection per
    submission (a redelivery of the same message gets the same MessageId; two senders'
    identical bodies get one each); for a poll message, its watch id when it can be
    recovered, so the watch still ends in exactly one ``{watchId}.final``.
    ``delivery_id`` is the refused message's MessageId, ``submission_id`` the intake
    message's (the same at intake). The raw body is echoed (size-capped) so nothing is lost; the
    ``correlationId``, ``operationId`` and ``subscriptionId`` are recovered from it when
    they are plain enough to be safe, so the sending pipeline's filter still matches.
    """
    message_id = f"{key}.final"
    recovered = _recover_ids(raw_body)
    correlation_id = recovered.get("correlationId")
    text = raw_body.decode("utf-8", "replace")
    data: dict[str, Any] = {
        "status": "Rejected",
        "reason": "InvalidWatchRequest",
        "errors": errors,
        "rawBody": text[:MAX_RAW_BODY_CHARS],
        "rawBodyTruncated": len(text) > MAX_RAW_BODY_CHARS,
        "rawBodyBytes": len(raw_body),
        "receivedMessageId": delivery_id,
        "submissionId": submission_id,
        "watchId": watch_id,
        "operationId": recovered.get("operationId"),
        "subscriptionId": recovered.get("subscriptionId"),
        "correlationId": correlation_id,
        "finishedAt": format_time(now),
    }
    properties: dict[str, str | int] = {
        "eventType": EventType.REJECTED.value,
        "status": "Rejected",
        "reason": "InvalidWatchRequest",
    }
    for name, value in recovered.items():
        properties[name] = value
    if submission_id:
        properties["submissionId"] = submission_id
    if watch_id:
        properties["watchId"] = watch_id
    envelope = _cloudevent(
        event_id=message_id,
        event_type=EventType.REJECTED,
        source="/ops-status/watch-requests",
        subject=recovered.get("operationId") or delivery_id,
        now=now,
        data=data,
        trace=trace,
    )
    return OutboundMessage(
        body=_fit(envelope),
        message_id=message_id,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
        subject=EventType.REJECTED.value,
        correlation_id=correlation_id,
        application_properties=properties,
        trace=trace,
    )


def _cloudevent(
    *,
    event_id: str,
    event_type: EventType,
    source: str,
    subject: str | None,
    now: datetime,
    data: dict[str, Any],
    trace: TraceContext | None,
) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type.value,
        "time": format_time(now),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject:
        envelope["subject"] = subject
    if trace is not None:
        # CloudEvents distributed-tracing extension (cloudevents/spec
        # cloudevents/extensions/distributed-tracing.md): the event's creation context.
        envelope["traceparent"] = trace.traceparent
        if trace.tracestate:
            envelope["tracestate"] = trace.tracestate
    return envelope


def _encode(envelope: Mapping[str, Any]) -> bytes:
    # JSON text may escape lone surrogates ("\ud800") that Python then holds in a str; a
    # request's context or ARM's error payload can carry them. They cannot be UTF-8
    # encoded: replace them ("?") rather than raise on every redelivery.
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "replace")


def _fit(envelope: dict[str, Any]) -> bytes:
    """Encode, shrinking ARM's error payload (only) until the body fits, with a marker.

    An error nested deeper than the encoder's recursion limit (ARM answered with JSON
    that ``json.loads`` could still parse, but ``dumps`` plus the envelope cannot) is
    treated like an oversized one: shrunk to a bounded depth, never a RecursionError.
    """
    try:
        body = _encode(envelope)
    except RecursionError:
        body = None
    if body is not None and len(body) <= MAX_EVENT_BODY_BYTES:
        return body
    data = envelope["data"]
    error = data.get("error")
    if isinstance(error, dict):
        for strings, items in ((4096, 20), (1024, 5), (256, 2)):
            data["error"] = _shrink(error, strings=strings, items=items, depth=6)
            data["errorTruncated"] = TRUNCATION_MARKER
            body = _encode(envelope)
            if len(body) <= MAX_EVENT_BODY_BYTES:
                return body
        data["error"] = {
            "code": str(error.get("code", ""))[:256],
            "message": str(error.get("message", ""))[:1024],
        }
    for key in ("rawBody", "detail"):
        if isinstance(data.get(key), str):
            data[key] = data[key][:1024]
            data[f"{key}Truncated"] = True
    data["errorTruncated"] = TRUNCATION_MARKER
    return _encode(envelope)


def _shrink(value: Any, *, strings: int, items: int, depth: int) -> Any:
    """A smaller copy of ``value`` with the same shape (objects stay objects, lists lists)."""
    if isinstance(value, str):
        return value if len(value) <= strings else value[:strings] + "...[truncated]"
    if isinstance(value, dict):
        if depth <= 0:
            return {"truncated": True}
        return {
            k[:strings]: _shrink(v, strings=strings, items=items, depth=depth - 1)
            for k, v in list(value.items())[: items * 5]
        }
    if isinstance(value, list):
        if depth <= 0:
            return []
        return [_shrink(v, strings=strings, items=items, depth=depth - 1) for v in value[:items]]
    return value


def _recover_ids(raw_body: bytes) -> dict[str, str]:
    """``correlationId``, ``operationId`` and ``subscriptionId`` from a refused body, each
    only when it is a plain string. ``operationId`` may come from a ``statusUrl``'s last
    path segment. Never raises."""
    # What a rejection may echo as a filterable property passes the correlation-id test
    # (printable ASCII, no spaces at the ends, short); the rest stays in the escaped rawBody.
    document = json_object(raw_body[: 64 * 1024])
    if document is None:
        return {}
    found: dict[str, str] = {}
    for name in ("correlationId", "operationId", "subscriptionId"):
        value = document.get(name)
        if isinstance(value, str) and is_plain_id(value):
            found[name] = value
    url = document.get("statusUrl")
    if "operationId" not in found and isinstance(url, str) and len(url) <= 2048:
        path = urlsplit(url).path if is_plain_id(url[:128]) else ""
        segments = [unquote(s) for s in path.split("/") if s]
        if segments and is_plain_id(segments[-1]):
            found["operationId"] = segments[-1]
        if (
            len(segments) > 1
            and segments[0].lower() == "subscriptions"
            and is_plain_id(segments[1])
        ):
            found.setdefault("subscriptionId", segments[1])
    return found
