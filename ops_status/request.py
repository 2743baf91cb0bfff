"""WatchRequest: the queue message contract, its validation and its poll state.

A watch request names one ARM async operation, either by parts (``subscriptionId``,
``location``, ``operationId``, optional ``apiVersion``) or by the ``statusUrl`` a
pipeline got in ``Azure-AsyncOperation``. Validation happens here and only here; what
comes out is a ``WatchRequest`` whose ``target.status_path`` is a path and query
*relative to the configured ARM endpoint*. No field of a message can choose the host
the bearer token is sent to.

The same body travels back onto the queue on every reschedule, with ``pollState``
added, so no process holds state while an operation runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ops_status.clock import format_time, parse_time
from ops_status.errors import InvalidWatchRequestError
from ops_status.policy import PollPolicy

__all__ = [
    "DEFAULT_API_VERSION",
    "MAX_BODY_BYTES",
    "OperationTarget",
    "PollState",
    "WatchRequest",
    "parse_watch_request",
]

DEFAULT_API_VERSION = "2025-07-01"
MAX_BODY_BYTES = 64 * 1024
MAX_CONTEXT_BYTES = 4 * 1024
MAX_STATUS_URL_LENGTH = 2048
MAX_OPERATION_ID_LENGTH = 256
MAX_CORRELATION_ID_LENGTH = 128
MAX_JSON_DEPTH = 32

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LOCATION = re.compile(r"^[A-Za-z0-9 ]{1,64}$")
# Unreserved characters plus a few sub-delimiters seen in real operation ids (``*`` in
# many providers' ids, ``:``/``+``/``=`` in encoded ones). No '/', '?', '#', '%', '\'.
_OPERATION_ID = re.compile(r"^[A-Za-z0-9._~*:+=!$@-]+$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview|-beta|-alpha|-privatepreview)?$")
_CORRELATION_ID = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~*:+=!$@,;()'-]+$")
_RAW_SEGMENT = re.compile(r"^(?:[A-Za-z0-9._~*:+=!$@,;()'-]|%[0-9A-Fa-f]{2})+$")
_LAST_STATUS = re.compile(r"^[\x20-\x7e]{0,64}$")


@dataclass(frozen=True)
class OperationTarget:
    """Where the operation's status is read, relative to the ARM endpoint."""

    status_path: str
    """Path and query, e.g. ``/subscriptions/{id}/providers/...?api-version=2025-07-01``."""
    subscription_id: str
    operation_id: str
    location: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class PollState:
    """What the chain of polls has learnt so far; travels in the message as ``pollState``."""

    first_seen: datetime
    deadline: datetime
    attempt: int = 0
    """Status reads done so far."""
    last_status: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None


@dataclass(frozen=True)
class WatchRequest:
    """A validated watch request. Build it with ``parse_watch_request``."""

    target: OperationTarget
    fields: Mapping[str, Any] = field(repr=False)
    """The request's own fields, normalised, as they go back on the queue."""
    correlation_id: str | None = None
    context: Mapping[str, Any] | None = None
    timeout: float | None = None
    deadline: datetime | None = None
    state: PollState | None = None

    @property
    def watch_key(self) -> str:
        """Stable id of this watch: same operation and correlation id, same key.

        Message ids derive from it, so a redelivered step (or a pipeline that submits
        the same watch twice) is dropped by Service Bus duplicate detection.
        """
        material = f"{self.target.status_path.split('?', 1)[0].lower()}|{self.correlation_id or ''}"
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def with_state(self, state: PollState) -> WatchRequest:
        return replace(self, state=state)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to put back on the queue (request fields + ``pollState``)."""
        body = dict(self.fields)
        if self.state is not None:
            state: dict[str, Any] = {
                "attempt": self.state.attempt,
                "firstSeen": format_time(self.state.first_seen),
                "deadline": format_time(self.state.deadline),
                "lastStatus": self.state.last_status,
                "consecutiveFailures": self.state.consecutive_failures,
            }
            if self.state.failing_since is not None:
                state["failingSince"] = format_time(self.state.failing_since)
            body["pollState"] = state
        return body


def parse_watch_request(
    body: bytes | str, *, arm_endpoint: str, policy: PollPolicy | None = None
) -> WatchRequest:
    """Validate a queue message body and return the request it describes.

    Raises ``InvalidWatchRequestError`` listing every problem found; never anything else.
    ``arm_endpoint`` is the configured endpoint (``scheme://host[:port]``): a ``statusUrl``
    must point exactly there.
    """
    policy = policy or PollPolicy()
    document = _decode(body)
    errors: list[str] = []

    has_url = "statusUrl" in document
    has_parts = any(k in document for k in ("subscriptionId", "location", "operationId"))
    target: OperationTarget | None = None
    fields: dict[str, Any] = {}
    if has_url and has_parts:
        errors.append("give either statusUrl or subscriptionId/location/operationId, not both")
    elif has_url:
        target = _target_from_url(document["statusUrl"], arm_endpoint, errors)
        fields["statusUrl"] = document["statusUrl"]
    elif has_parts:
        target = _target_from_parts(document, errors)
        if target is not None:
            fields.update(
                subscriptionId=target.subscription_id,
                location=target.location,
                operationId=target.operation_id,
                apiVersion=document.get("apiVersion", DEFAULT_API_VERSION),
            )
    else:
        errors.append("missing target: give statusUrl, or subscriptionId, location and operationId")

    correlation_id = _optional_correlation_id(document.get("correlationId"), errors)
    context = _optional_context(document.get("context"), errors)
    timeout = _optional_timeout(document.get("timeout"), policy, errors)
    deadline = _optional_deadline(document.get("deadline"), errors)
    state = _optional_state(document.get("pollState"), policy, errors)

    if errors or target is None:
        raise InvalidWatchRequestError(errors or ["missing target"])

    for name, value in (
        ("correlationId", correlation_id),
        ("context", context),
        ("timeout", document.get("timeout") if timeout is not None else None),
        ("deadline", document.get("deadline") if deadline is not None else None),
    ):
        if value is not None:
            fields[name] = value
    return WatchRequest(
        target=target,
        fields=fields,
        correlation_id=correlation_id,
        context=context,
        timeout=timeout,
        deadline=deadline,
        state=state,
    )


def start_state(request: WatchRequest, now: datetime, policy: PollPolicy) -> PollState:
    """The poll state of a watch seen for the first time at ``now``."""
    timeout = request.timeout if request.timeout is not None else policy.default_timeout
    deadline = now + timedelta(seconds=timeout)
    if request.deadline is not None:
        deadline = min(deadline, request.deadline)
    return PollState(first_seen=now, deadline=deadline)


# -- decoding -------------------------------------------------------------------------


def _decode(body: bytes | str) -> dict[str, Any]:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidWatchRequestError([f"body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWatchRequestError(
            [f"body is not UTF-8 ({exc.reason} at byte {exc.start})"]
        ) from None
    try:
        document = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants
        )
    except _DuplicateKeyError as exc:
        raise InvalidWatchRequestError([f"duplicate key {exc.args[0]!r} in body"]) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidWatchRequestError([f"body is not valid JSON: {reason}"]) from None
    if not isinstance(document, dict):
        raise InvalidWatchRequestError(["body must be a JSON object"])
    if _depth(document) > MAX_JSON_DEPTH:
        raise InvalidWatchRequestError([f"body is nested deeper than {MAX_JSON_DEPTH} levels"])
    return document


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers can disagree on which duplicate wins; refuse the ambiguity outright.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# -- target ---------------------------------------------------------------------------


def _target_from_parts(document: Mapping[str, Any], errors: list[str]) -> OperationTarget | None:
    subscription = document.get("subscriptionId")
    location = document.get("location")
    operation = document.get("operationId")
    api_version = document.get("apiVersion", DEFAULT_API_VERSION)
    before = len(errors)
    if not isinstance(subscription, str) or not _GUID.match(subscription):
        errors.append("subscriptionId must be a GUID")
    if not isinstance(location, str) or not _LOCATION.match(location) or not location.strip():
        errors.append("location must be an Azure region name (letters, digits and spaces)")
    if (
        not isinstance(operation, str)
        or not 0 < len(operation) <= MAX_OPERATION_ID_LENGTH
        or not _OPERATION_ID.match(operation)
        or operation in (".", "..")
    ):
        errors.append(
            f"operationId must be 1-{MAX_OPERATION_ID_LENGTH} characters of letters, digits "
            "and ._~*:+=!$@- (no '/', '?', '#', '%' or spaces)"
        )
    if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
        errors.append("apiVersion must have the ARM date form YYYY-MM-DD[-preview]")
    if len(errors) > before:
        return None
    assert isinstance(subscription, str)
    assert isinstance(location, str)
    assert isinstance(operation, str)
    region = location.replace(" ", "").lower()
    path = (
        f"/subscriptions/{subscription.lower()}/providers/Microsoft.Cache/locations/"
        f"{quote(region, safe='')}/operationsStatus/{quote(operation, safe='')}"
    )
    return OperationTarget(
        status_path=f"{path}?{urlencode({'api-version': api_version})}",
        subscription_id=subscription.lower(),
        operation_id=operation,
        location=region,
        provider="Microsoft.Cache",
    )


def _target_from_url(value: Any, arm_endpoint: str, errors: list[str]) -> OperationTarget | None:
    if not isinstance(value, str) or not value:
        errors.append("statusUrl must be a non-empty string")
        return None
    if len(value) > MAX_STATUS_URL_LENGTH:
        errors.append(f"statusUrl is longer than {MAX_STATUS_URL_LENGTH} characters")
        return None
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F or c == "\\" for c in value):
        errors.append(
            "statusUrl must not contain spaces, control characters, backslashes or non-ASCII"
        )
        return None
    endpoint = urlsplit(arm_endpoint)
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        errors.append("statusUrl is not a valid URL")
        return None
    if "@" in url.netloc or url.username is not None or url.password is not None:
        errors.append("statusUrl must not contain user information")
        return None
    default_port = 443 if endpoint.scheme == "https" else 80
    if (
        url.scheme.lower() != endpoint.scheme
        or (url.hostname or "") != endpoint.hostname
        or (port or default_port) != (endpoint.port or default_port)
    ):
        errors.append(
            f"statusUrl must point at the configured ARM endpoint {arm_endpoint} "
            "(same scheme, host and port)"
        )
        return None
    if url.fragment or "#" in value:
        errors.append("statusUrl must not have a fragment")
        return None
    segments = url.path.split("/")
    if len(segments) < 4 or segments[0] != "" or segments[1].lower() != "subscriptions":
        errors.append("statusUrl path must start with /subscriptions/{subscriptionId}/")
        return None
    if not _GUID.match(segments[2]):
        errors.append("statusUrl path must start with /subscriptions/{subscriptionId}/ (a GUID)")
        return None
    rest = segments[3:]
    for segment in rest:
        problem = _segment_problem(segment)
        if problem:
            errors.append(f"statusUrl path {problem}")
            return None
    try:
        query = parse_qsl(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
    except ValueError:
        errors.append("statusUrl has a malformed query string")
        return None
    versions = [v for k, v in query if k == "api-version"]
    if len(versions) != 1 or not _API_VERSION.match(versions[0]):
        errors.append("statusUrl must carry exactly one api-version of the ARM date form")
        return None
    lowered = [s.lower() for s in rest]
    location = None
    if "locations" in lowered and lowered.index("locations") + 1 < len(rest):
        location = unquote(rest[lowered.index("locations") + 1]).replace(" ", "").lower()
    provider = None
    if "providers" in lowered and lowered.index("providers") + 1 < len(rest):
        provider = rest[lowered.index("providers") + 1]
    path = "/".join(["", "subscriptions", segments[2].lower(), *rest])
    return OperationTarget(
        status_path=f"{path}?{urlencode(query)}",
        subscription_id=segments[2].lower(),
        operation_id=unquote(rest[-1]),
        location=location,
        provider=provider,
    )


def _segment_problem(segment: str) -> str | None:
    """Why a path segment is unsafe, or None. Percent-escapes are allowed only where the
    decoded text is itself a plain segment: an encoded '/', '\\', '.' or '%' could
    re-route the request once a server decodes it."""
    if not segment:
        return "has an empty segment"
    if not _RAW_SEGMENT.match(segment):
        return "has characters outside a URL path segment"
    decoded = unquote(segment)
    if decoded in (".", ".."):
        return "must not contain dot segments"
    if not _PATH_SEGMENT.match(decoded):
        return "must not encode '/', '\\', '%', '?', '#' or control characters"
    return None


# -- optional fields ------------------------------------------------------------------


def _optional_correlation_id(value: Any, errors: list[str]) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or len(value) > MAX_CORRELATION_ID_LENGTH
        or not _CORRELATION_ID.match(value)
    ):
        errors.append(
            f"correlationId must be 1-{MAX_CORRELATION_ID_LENGTH} printable ASCII characters"
        )
        return None
    return value


def _optional_context(value: Any, errors: list[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append("context must be a JSON object")
        return None
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_CONTEXT_BYTES:
        errors.append(f"context is {size} bytes as JSON; the limit is {MAX_CONTEXT_BYTES}")
        return None
    return value


def _optional_timeout(value: Any, policy: PollPolicy, errors: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors.append("timeout must be a number of seconds")
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        errors.append("timeout must be a number of seconds")
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        errors.append("timeout must be a positive number of seconds")
        return None
    if seconds > policy.max_timeout:
        errors.append(f"timeout must not exceed {policy.max_timeout:g} seconds")
        return None
    return seconds


def _optional_deadline(value: Any, errors: list[str]) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append("deadline must be an RFC 3339 timestamp with a time zone")
        return None
    try:
        return parse_time(value)
    except ValueError:
        errors.append("deadline must be an RFC 3339 timestamp with a time zone")
        return None


def _optional_state(value: Any, policy: PollPolicy, errors: list[str]) -> PollState | None:
    if value is None:
        return None
    problem = "pollState is written by ops-status and was altered or truncated"
    if not isinstance(value, dict):
        errors.append(problem)
        return None
    try:
        attempt = value["attempt"]
        failures = value.get("consecutiveFailures", 0)
        last_status = value.get("lastStatus")
        if not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 1_000_000
            for n in (attempt, failures)
        ):
            raise ValueError("counter out of range")
        if last_status is not None and (
            not isinstance(last_status, str) or not _LAST_STATUS.match(last_status)
        ):
            raise ValueError("lastStatus")
        first_seen = parse_time(value["firstSeen"])
        deadline = parse_time(value["deadline"])
        failing_since = (
            parse_time(value["failingSince"]) if value.get("failingSince") is not None else None
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        errors.append(problem)
        return None
    # One extra minute of slack: the deadline is computed from a clock read after first_seen.
    if deadline < first_seen or (deadline - first_seen).total_seconds() > policy.max_timeout + 60:
        errors.append(problem)
        return None
    return PollState(
        first_seen=first_seen,
        deadline=deadline,
        attempt=attempt,
        last_status=last_status,
        consecutive_failures=failures,
        failing_since=failing_since,
    )
