"""WatchRequest: the queue message contract, its validation and its poll state.

A watch request names one ARM async operation, either by parts (``subscriptionId``,
``location``, ``operationId``, optional ``apiVersion``) or by the ``statusUrl`` a
pipeline got in ``Azure-AsyncOperation``. Validation happens here and only here (the
target's part in ``ops_status.target``); what comes out is a ``WatchRequest`` whose
``target.status_path`` is a path and query *relative to the configured ARM endpoint*.
No field of a message can choose the host the bearer token is sent to.

Two queues, one trust boundary. A pipeline sends a *submission* to the intake queue
(``parse_watch_request``): every message there is a fresh watch, and the fields only
ops-status writes (``pollState``, ``watchId``, ``submissionId``) are refused. Each
follow-up travels on the polls queue, which only the app's identity may send to, with
those fields added (``parse_poll_message``), so no process holds state while an
operation runs and no pipeline can forge it.

Why it is long (~500 lines): the intake contract is the trust boundary, and every rule
of it (types, sizes, depth, duplicate keys, the fields only ops-status writes, the poll
state's own checks) is kept beside the others so a reviewer reads the boundary whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from ops_status.clock import format_time, parse_time
from ops_status.errors import InvalidWatchRequestError
from ops_status.policy import PollPolicy
from ops_status.target import (
    DEFAULT_API_VERSION,
    OperationTarget,
    target_from_parts,
    target_from_url,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "MAX_BODY_BYTES",
    "FailureStreak",
    "OperationTarget",
    "PollState",
    "WatchRequest",
    "parse_poll_message",
    "parse_watch_request",
    "recover_watch_ids",
    "start_state",
    "submission_key",
]

MAX_BODY_BYTES = 64 * 1024
MAX_CONTEXT_BYTES = 4 * 1024
MAX_CORRELATION_ID_LENGTH = 128
MAX_JSON_DEPTH = 32

_CORRELATION_ID = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
_WATCH_ID = re.compile(r"[0-9a-f]{32}")
_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


@dataclass(frozen=True)
class FailureStreak:
    """Consecutive failed reads of one kind (``ReadFailureKind`` value) since the last status."""

    count: int
    since: datetime


@dataclass(frozen=True)
class PollState:
    """What the chain of polls has learnt so far; travels in the message as ``pollState``.

    Written only by ops-status, on the polls queue, which pipelines cannot send to.
    """

    first_seen: datetime
    """When the submission reached the intake queue (the broker's enqueued time)."""
    deadline: datetime
    """Fixed at intake: first_seen + timeout, or the request's earlier deadline."""
    attempt: int = 0
    """Status reads done so far."""
    last_status: str | None = None
    percent_complete: float | None = None
    """ARM's ``percentComplete`` in the read that set ``last_status`` (None: not given)."""
    consecutive_failures: int = 0
    """Failed reads of any kind since the last status: drives the back-off."""
    streaks: Mapping[str, FailureStreak] = field(default_factory=dict)
    """Per failure kind, since the last status: each kind is judged against its own limit."""


@dataclass(frozen=True)
class WatchRequest:
    """A validated watch request. Build it with ``parse_watch_request`` (a submission from
    the intake queue) or ``parse_poll_message`` (a follow-up from the polls queue)."""

    target: OperationTarget
    fields: Mapping[str, Any] = field(repr=False)
    """The request's own fields, normalised, as they go on to the polls queue."""
    correlation_id: str | None = None
    context: Mapping[str, Any] | None = None
    timeout: float | None = None
    deadline: datetime | None = None
    state: PollState | None = None
    watch_id: str | None = None
    """Set at intake from the submission's broker identity (see ``inbound``); None before."""
    submission_id: str | None = None
    """The intake message's MessageId, echoed in the events."""

    @property
    def watch_key(self) -> str:
        """The watch id, or for a request not yet admitted (the CLI's ``watch``) a stable
        key from the operation and correlation id. Message ids and jitter derive from it."""
        if self.watch_id is not None:
            return self.watch_id
        return submission_key(self)

    def with_state(self, state: PollState) -> WatchRequest:
        return replace(self, state=state)

    def admitted(
        self, watch_id: str, *, submission_id: str | None, first_seen: datetime, policy: PollPolicy
    ) -> WatchRequest:
        """This submission as a watch: its id and its start state, deadline fixed now."""
        return replace(
            self,
            watch_id=watch_id,
            submission_id=submission_id,
            state=start_state(self, first_seen, policy),
        )

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the next poll message (request fields, ids, ``pollState``)."""
        body = dict(self.fields)
        if self.watch_id is not None:
            body["watchId"] = self.watch_id
        if self.submission_id is not None:
            body["submissionId"] = self.submission_id
        if self.state is not None:
            state: dict[str, Any] = {
                "attempt": self.state.attempt,
                "firstSeen": format_time(self.state.first_seen),
                "deadline": format_time(self.state.deadline),
                "lastStatus": self.state.last_status,
                "percentComplete": self.state.percent_complete,
                "consecutiveFailures": self.state.consecutive_failures,
            }
            if self.state.streaks:
                state["failures"] = {
                    kind: {"count": streak.count, "since": format_time(streak.since)}
                    for kind, streak in self.state.streaks.items()
                }
            body["pollState"] = state
        return body


def submission_key(request: WatchRequest) -> str:
    """A stable key from the operation and the correlation id: the MessageId the CLI gives
    a submission, so a retried ``submit`` is dropped by the intake queue's duplicate
    detection."""
    path = request.target.status_path.split("?", 1)[0].lower()
    material = f"{path}|{request.correlation_id or ''}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


# Fields only ops-status writes, on the polls queue. A submission carrying them is
# refused rather than trusted: a pipeline must not choose its own poll state or id.
_PRODUCT_FIELDS = ("pollState", "watchId", "submissionId")


def parse_watch_request(
    body: bytes | str, *, arm_endpoint: str, policy: PollPolicy | None = None
) -> WatchRequest:
    """Validate a submission (an intake-queue message body) and return its request.

    Raises ``InvalidWatchRequestError`` listing every problem found; never anything else.
    ``arm_endpoint`` is the configured endpoint (``scheme://host[:port]``): a ``statusUrl``
    must point exactly there. ``pollState``, ``watchId`` and ``submissionId`` are refused:
    they are written only by ops-status.
    """
    policy = policy or PollPolicy()
    document = _decode(body)
    errors = [
        f"{name} is written only by ops-status (on its polls queue); a submission must not carry it"
        for name in _PRODUCT_FIELDS
        if name in document
    ]
    return _parse(document, arm_endpoint, policy, errors, trusted=False)


def parse_poll_message(
    body: bytes | str, *, arm_endpoint: str, policy: PollPolicy | None = None
) -> WatchRequest:
    """Validate a follow-up that ops-status wrote to its polls queue.

    The target is validated as strictly as at intake (the token's destination never rests
    on trust), but what only ops-status writes is taken as written, with the current
    settings applied: a deadline beyond ``first_seen + max_timeout`` (the setting was
    lowered while the watch ran) is clamped, not rejected.
    """
    policy = policy or PollPolicy()
    document = _decode(body)
    errors: list[str] = []
    watch_id = document.get("watchId")
    if not isinstance(watch_id, str) or not _WATCH_ID.fullmatch(watch_id):
        errors.append("watchId must be the 32-hex-digit id ops-status wrote")
    submission_id = document.get("submissionId")
    if submission_id is not None and (
        not isinstance(submission_id, str) or not 0 < len(submission_id) <= 128
    ):
        errors.append("submissionId must be a string of up to 128 characters")
    if document.get("pollState") is None:
        errors.append("pollState is missing")
    request = _parse(document, arm_endpoint, policy, errors, trusted=True)
    return replace(request, watch_id=watch_id, submission_id=submission_id)


def recover_watch_ids(body: bytes) -> tuple[str | None, str | None]:
    """(watchId, submissionId) from a poll message that failed validation, each only when
    it has the shape ops-status writes. Never raises."""
    try:
        document = json.loads(body[:MAX_BODY_BYTES].decode("utf-8"))
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    watch_id, submission_id = document.get("watchId"), document.get("submissionId")
    return (
        watch_id if isinstance(watch_id, str) and _WATCH_ID.fullmatch(watch_id) else None,
        submission_id if isinstance(submission_id, str) and 0 < len(submission_id) <= 128 else None,
    )


def _parse(
    document: dict[str, Any],
    arm_endpoint: str,
    policy: PollPolicy,
    errors: list[str],
    *,
    trusted: bool,
) -> WatchRequest:
    has_url = "statusUrl" in document
    has_parts = any(k in document for k in ("subscriptionId", "location", "operationId"))
    target: OperationTarget | None = None
    fields: dict[str, Any] = {}
    if has_url and has_parts:
        errors.append("give either statusUrl or subscriptionId/location/operationId, not both")
    elif has_url:
        target = target_from_url(document["statusUrl"], arm_endpoint, errors)
        fields["statusUrl"] = document["statusUrl"]
    elif has_parts:
        target = target_from_parts(document, errors)
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
    timeout = _optional_timeout(document.get("timeout"), policy, errors, clamp=trusted)
    deadline = _optional_deadline(document.get("deadline"), errors)
    state = _optional_state(document.get("pollState"), policy, errors) if trusted else None

    if errors or target is None:
        raise InvalidWatchRequestError(errors or ["missing target"])

    for name, value in (
        ("correlationId", correlation_id),
        ("context", context),
        ("timeout", timeout),
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


def start_state(request: WatchRequest, first_seen: datetime, policy: PollPolicy) -> PollState:
    """The poll state of a watch first seen at ``first_seen``: its deadline, fixed for good."""
    timeout = request.timeout if request.timeout is not None else policy.default_timeout
    deadline = first_seen + timedelta(seconds=min(timeout, policy.max_timeout))
    if request.deadline is not None:
        deadline = min(deadline, request.deadline)
    return PollState(first_seen=first_seen, deadline=deadline)


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
    """Nesting depth, walked without recursion: ``json.loads`` accepts a few hundred levels
    more than a recursive walk survives (a 2.4 KB body raised RecursionError here)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > MAX_JSON_DEPTH:
            return depth  # deep enough to refuse; no need to walk the rest
        deepest = max(deepest, depth)
        pending.extend((child, depth) for child in children)
    return deepest


# -- optional fields ------------------------------------------------------------------


def is_plain_id(value: object) -> TypeGuard[str]:
    """True for what a correlation id may be: 1-128 printable ASCII characters, no space at
    either end. Rejections echo recovered ids only when they pass the same test."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_CORRELATION_ID_LENGTH
        and _CORRELATION_ID.fullmatch(value) is not None
    )


def _optional_correlation_id(value: Any, errors: list[str]) -> str | None:
    if value is None:
        return None
    if not is_plain_id(value):
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


def _optional_timeout(
    value: Any, policy: PollPolicy, errors: list[str], *, clamp: bool = False
) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors.append("timeout must be a number of seconds")
        return None
    # float() also takes " 3600\n", "1e3", "1_000" and non-ASCII digits: the contract
    # (and the schema) is plain decimal text.
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
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
        if clamp:  # a running watch, after OPS_STATUS_MAX_TIMEOUT was lowered
            return policy.max_timeout
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
    """The poll state ops-status wrote. Its fields are checked for shape (a bug or a
    version skew must not crash the handler), and the current ``max_timeout`` is applied
    by clamping the deadline: this message came from the product itself."""
    problem = "pollState is written by ops-status and was altered or truncated"
    if not isinstance(value, dict):
        errors.append(problem)
        return None
    try:
        attempt = value["attempt"]
        failures = value.get("consecutiveFailures", 0)
        last_status = value.get("lastStatus")
        if not all(_is_count(n) for n in (attempt, failures)):
            raise ValueError("counter out of range")
        if last_status is not None and (not isinstance(last_status, str) or len(last_status) > 64):
            raise ValueError("lastStatus")
        percent_complete = value.get("percentComplete")
        if percent_complete is not None and not _is_percent(percent_complete):
            raise ValueError("percentComplete")
        first_seen = parse_time(value["firstSeen"])
        deadline = parse_time(value["deadline"])
        streaks: dict[str, FailureStreak] = {}
        for kind, streak in (value.get("failures") or {}).items():
            if not isinstance(kind, str) or len(kind) > 32 or not _is_count(streak["count"]):
                raise ValueError("failures")
            streaks[kind] = FailureStreak(streak["count"], parse_time(streak["since"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        errors.append(problem)
        return None
    if deadline < first_seen:
        errors.append(problem)
        return None
    # A first_seen within max_timeout of year 9999 has nothing to clamp.
    with contextlib.suppress(OverflowError):
        deadline = min(deadline, first_seen + timedelta(seconds=policy.max_timeout))
    return PollState(
        first_seen=first_seen,
        deadline=deadline,
        attempt=attempt,
        last_status=last_status,
        percent_complete=None if percent_complete is None else float(percent_complete),
        consecutive_failures=failures,
        streaks=streaks,
    )


def _is_percent(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 100
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1_000_000
