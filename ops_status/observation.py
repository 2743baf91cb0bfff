"""What one status read observed, and how an HTTP answer from ARM maps to it.

``classify_response`` is pure: status code, headers and body in, an ``Observation`` out.
The HTTP adapter (``arm.py``) only moves bytes; every judgement about what ARM meant
lives here, next to the facts it rests on (ARM RPC async-api-reference.md, the
Microsoft.Cache 2025-07-01 spec).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

from ops_status.jsontext import json_object

__all__ = [
    "Observation",
    "OperationState",
    "ReadFailure",
    "ReadFailureKind",
    "StatusRead",
    "classify_response",
    "normalize_arm_error",
    "parse_retry_after",
    "terminal_state",
]


class OperationState(str, Enum):
    """The terminal states of an ARM async operation; anything else means still running."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


# ARM RPC names three terminal values; SDKs have met "Cancelled" and "Completed" in the
# wild (azure-sdk-for-go accepts both). Compared case-insensitively, as azure-core does.
_TERMINAL = {
    "succeeded": OperationState.SUCCEEDED,
    "completed": OperationState.SUCCEEDED,
    "failed": OperationState.FAILED,
    "canceled": OperationState.CANCELED,
    "cancelled": OperationState.CANCELED,
}


def terminal_state(status: str) -> OperationState | None:
    """The terminal state ``status`` names, or None while the operation is still running."""
    return _TERMINAL.get(status.strip().lower())


class ReadFailureKind(str, Enum):
    """Why a status read produced no status. The decision function owns what each one means."""

    THROTTLED = "Throttled"
    """429: ARM's read budget for the subscription is spent; wait Retry-After."""
    TRANSIENT = "Transient"
    """5xx, timeout, connection error: try again with back-off, a bounded number of times."""
    MALFORMED = "Malformed"
    """200 whose body is not JSON or has no status: treated like a transient failure."""
    NOT_FOUND = "NotFound"
    """404: wrong id/location, expired record, or replication lag just after the start."""
    UNAUTHORIZED = "Unauthorized"
    """401/403: the identity lacks access (role assignments take minutes to propagate)."""
    REJECTED = "Rejected"
    """Any other 4xx: ARM refuses the request itself; retrying cannot help."""
    TOKEN_UNAVAILABLE = "TokenUnavailable"  # noqa: S105 - a reason, not a secret
    """No token for ARM (identity endpoint down or misconfigured): no read was possible.
    Retried with back-off for its own grace, like any other failed read: raising instead
    would make the host redeliver at once and dead-letter the watch within seconds."""


@dataclass(frozen=True)
class StatusRead:
    """ARM answered 200 with a status."""

    status: str
    percent_complete: float | None = None
    error: Mapping[str, Any] | None = None
    start_time: str | None = None
    end_time: str | None = None
    name: str | None = None
    resource_id: str | None = None
    retry_after: float | None = None
    remaining_reads: int | None = None

    @property
    def state(self) -> OperationState | None:
        return terminal_state(self.status)


@dataclass(frozen=True)
class ReadFailure:
    """The status could not be read. ``error`` is ARM's error object when it sent one."""

    kind: ReadFailureKind
    detail: str
    http_status: int | None = None
    error: Mapping[str, Any] | None = None
    retry_after: float | None = None
    remaining_reads: int | None = None


Observation = StatusRead | ReadFailure


def classify_response(
    status_code: int, headers: Mapping[str, str], body: bytes, *, now: datetime
) -> Observation:
    """Map one HTTP answer from a status URL to an observation. Never raises.

    ``headers`` must be case-insensitive (``requests`` gives one), or lowercase-keyed.
    """
    retry_after = parse_retry_after(headers, now=now)
    remaining = _remaining_reads(headers)
    if status_code == 200:
        document = json_object(body)
        if document is None:
            return ReadFailure(
                ReadFailureKind.MALFORMED,
                "status response is not a JSON object",
                200,
                retry_after=retry_after,
                remaining_reads=remaining,
            )
        status = document.get("status")
        if not isinstance(status, str) or not status.strip():
            return ReadFailure(
                ReadFailureKind.MALFORMED,
                "status response has no status",
                200,
                retry_after=retry_after,
                remaining_reads=remaining,
            )
        return StatusRead(
            status=status.strip()[:64],
            percent_complete=_percent(document.get("percentComplete")),
            error=normalize_arm_error(document.get("error")),
            start_time=_short_string(document.get("startTime")),
            end_time=_short_string(document.get("endTime")),
            name=_short_string(document.get("name")),
            resource_id=_short_string(document.get("id"), limit=1024),
            retry_after=retry_after,
            remaining_reads=remaining,
        )
    error = normalize_arm_error(json_object(body))
    if status_code == 429:
        failure = ReadFailureKind.THROTTLED
    elif status_code >= 500 or status_code in (408,):
        failure = ReadFailureKind.TRANSIENT
    elif status_code == 404:
        failure = ReadFailureKind.NOT_FOUND
    elif status_code in (401, 403):
        failure = ReadFailureKind.UNAUTHORIZED
    elif 400 <= status_code < 500:
        failure = ReadFailureKind.REJECTED
    else:
        # 1xx/2xx other than 200 and 3xx: a status URL answers 200; anything else is a
        # proxy or platform oddity. Redirects are never followed (they could carry the token).
        failure = ReadFailureKind.TRANSIENT
    code = error.get("code") if error else None
    detail = f"HTTP {status_code}" + (f" {code}" if code else "")
    return ReadFailure(failure, detail, status_code, error, retry_after, remaining)


def normalize_arm_error(value: Any) -> dict[str, Any] | None:
    """ARM's error object, unwrapped from either shape and otherwise kept intact.

    ARM RPC writes ``{"code", "message", ...}`` directly; the Microsoft.Cache spec (and
    every non-200 answer) wraps it as ``{"error": {"code", ...}}``. Both become the inner
    object, with ``details`` and ``additionalInfo`` untouched. Anything that is not an
    object becomes ``{"code": "Unknown", "message": <text>}``.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        inner = value.get("error")
        if isinstance(inner, dict) and "code" not in value:
            return dict(inner)
        return dict(value)
    return {"code": "Unknown", "message": str(value)[:4096]}


def parse_retry_after(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``x-ms-retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be integer seconds (ARM RPC) or an HTTP-date (RFC 9110), as
    azure-core accepts. Unparseable or negative values are ignored.
    """
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001)):
        value = _header(headers, name)
        if value is not None:
            seconds = _finite(value)
            if seconds is not None and seconds >= 0:
                return seconds * scale
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return max((moment - now).total_seconds(), 0.0)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return value.strip() if isinstance(value, str) else None


def _finite(text: str) -> float | None:
    if len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _remaining_reads(headers: Mapping[str, str]) -> int | None:
    value = _header(headers, "x-ms-ratelimit-remaining-subscription-reads")
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    return int(value)


def _percent(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= 100.0 else None


def _short_string(value: Any, limit: int = 256) -> str | None:
    return value[:limit] if isinstance(value, str) else None
