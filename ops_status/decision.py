"""The decision: given a watch, what ARM said, and the time, what happens next.

``decide`` is the product's one piece of judgement and it is pure: no I/O, no clock, no
randomness. It returns exactly one action:

- ``Reschedule``: read again after ``delay`` seconds, carrying ``next_request``;
- ``Finish``: the watch is over; publish the terminal event described by ``outcome``.

Invalid messages never get here: ``parse_watch_request`` rejects them first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from ops_status.clock import parse_time
from ops_status.observation import (
    Observation,
    OperationState,
    ReadFailure,
    ReadFailureKind,
    StatusRead,
)
from ops_status.policy import PollPolicy, jitter_fraction, poll_delay
from ops_status.request import FailureStreak, PollState, WatchRequest, start_state

__all__ = ["Action", "FinalStatus", "Finish", "Outcome", "Reason", "Reschedule", "decide"]

# ARM RPC: when a throttled answer names no Retry-After, clients wait 60 s.
_THROTTLE_DEFAULT_WAIT = 60.0


class FinalStatus(str, Enum):
    """The ``status`` of a terminal event."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TIMED_OUT = "TimedOut"


class Reason(str, Enum):
    """Why a watch ended other than by ARM reporting Succeeded."""

    OPERATION_FAILED = "OperationFailed"
    OPERATION_CANCELED = "OperationCanceled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    OPERATION_NOT_FOUND = "OperationNotFound"
    STATUS_READ_UNAUTHORIZED = "StatusReadUnauthorized"
    STATUS_READ_REJECTED = "StatusReadRejected"
    STATUS_UNREADABLE = "StatusUnreadable"
    TOKEN_UNAVAILABLE = "TokenUnavailable"  # noqa: S105 - a reason, not a secret


@dataclass(frozen=True)
class Outcome:
    """Everything the terminal event says about how the watch ended."""

    status: FinalStatus
    reason: Reason | None = None
    error: Mapping[str, Any] | None = None
    arm_status: str | None = None
    detail: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    operation_name: str | None = None
    resource_id: str | None = None
    percent_complete: float | None = None


@dataclass(frozen=True)
class Reschedule:
    delay: float
    """Seconds until the next read."""
    not_before: datetime
    """When the next read is due: the scheduled enqueue time of ``next_request``."""
    next_request: WatchRequest


@dataclass(frozen=True)
class Finish:
    outcome: Outcome
    request: WatchRequest
    """The request with its final poll state (attempt = reads done)."""


Action = Reschedule | Finish


# Ends the watch without ARM having said it ended: the watch gave up on reading it.
_GIVE_UP = frozenset(
    {
        Reason.OPERATION_NOT_FOUND,
        Reason.STATUS_READ_UNAUTHORIZED,
        Reason.STATUS_READ_REJECTED,
        Reason.STATUS_UNREADABLE,
        Reason.TOKEN_UNAVAILABLE,
    }
)


def decide(
    request: WatchRequest,
    observation: Observation,
    now: datetime,
    policy: PollPolicy,
    *,
    redelivered: bool = False,
) -> Action:
    """Decide what follows one status read. Total: returns an action for every input.

    ``redelivered``: this message was delivered before, so its first run may already have
    scheduled the next poll and died before completing. Giving up now could contradict
    that surviving chain later, past the topic's duplicate-detection window (a Failed
    event here, a Succeeded one from the chain an hour on). So a redelivered step never
    gives up: it schedules the same next poll (the same MessageId, dropped as a duplicate
    if it exists), and that step, a first delivery, decides.
    """
    state = request.state or start_state(request, now, policy)
    state = replace(state, attempt=state.attempt + 1)
    request = request.with_state(state)

    if isinstance(observation, StatusRead):
        return _after_status(request, state, observation, now, policy)
    action = _after_failure(request, state, observation, now, policy)
    if redelivered and isinstance(action, Finish) and action.outcome.reason in _GIVE_UP:
        delay = min(policy.min_delay, max((state.deadline - now).total_seconds(), 0.0))
        return Reschedule(delay, now + timedelta(seconds=delay), action.request)
    return action


def _after_status(
    request: WatchRequest, state: PollState, read: StatusRead, now: datetime, policy: PollPolicy
) -> Action:
    state = replace(
        state,
        last_status=read.status,
        percent_complete=read.percent_complete,
        consecutive_failures=0,
        streaks={},
    )
    request = request.with_state(state)
    details: dict[str, Any] = {
        "arm_status": read.status,
        "start_time": read.start_time,
        "end_time": read.end_time,
        "operation_name": read.name,
        "resource_id": read.resource_id,
        "percent_complete": read.percent_complete,
    }
    terminal = read.state
    if terminal is OperationState.SUCCEEDED:
        return Finish(Outcome(FinalStatus.SUCCEEDED, **details), request)
    if terminal is OperationState.FAILED:
        return Finish(
            Outcome(FinalStatus.FAILED, Reason.OPERATION_FAILED, read.error, **details), request
        )
    if terminal is OperationState.CANCELED:
        return Finish(
            Outcome(FinalStatus.CANCELED, Reason.OPERATION_CANCELED, read.error, **details), request
        )
    return _again(
        request,
        state,
        now,
        policy,
        retry_after=read.retry_after,
        remaining_reads=read.remaining_reads,
        last_read=read,
    )


def _since_start(start_time: str | None, now: datetime) -> float | None:
    """Seconds since ARM's ``startTime``, or None when it is absent, unreadable or ahead
    of ``now`` (clock skew): progress is then projected from the watch's first-seen time."""
    if start_time is None:
        return None
    try:
        started = parse_time(start_time)
    except (ValueError, OverflowError):
        return None
    since = (now - started).total_seconds()
    return since if since >= 0 else None


def _after_failure(
    request: WatchRequest, state: PollState, failure: ReadFailure, now: datetime, policy: PollPolicy
) -> Action:
    def give_up(reason: Reason) -> Finish:
        return Finish(
            Outcome(
                FinalStatus.FAILED,
                reason,
                failure.error,
                arm_status=state.last_status,
                detail=failure.detail,
            ),
            request,
        )

    if failure.kind is ReadFailureKind.REJECTED:
        return give_up(Reason.STATUS_READ_REJECTED)

    if failure.kind is ReadFailureKind.THROTTLED:
        # Throttling says nothing about the operation: no failure counted, just wait.
        wait = failure.retry_after if failure.retry_after is not None else _THROTTLE_DEFAULT_WAIT
        return _again(
            request, state, now, policy, retry_after=wait, remaining_reads=failure.remaining_reads
        )

    # Each kind of failure is judged against its own limit: 615 s of 403s followed by one
    # 500 is one transient failure, not the eleventh.
    streak = state.streaks.get(failure.kind.value)
    streak = FailureStreak(streak.count + 1, streak.since) if streak else FailureStreak(1, now)
    state = replace(
        state,
        consecutive_failures=state.consecutive_failures + 1,
        streaks={**state.streaks, failure.kind.value: streak},
    )
    request = request.with_state(state)
    failing_for = (now - streak.since).total_seconds()

    if failure.kind is ReadFailureKind.NOT_FOUND and failing_for >= policy.not_found_grace:
        return give_up(Reason.OPERATION_NOT_FOUND)
    if failure.kind is ReadFailureKind.UNAUTHORIZED and failing_for >= policy.auth_failure_grace:
        return give_up(Reason.STATUS_READ_UNAUTHORIZED)
    if (
        failure.kind is ReadFailureKind.TOKEN_UNAVAILABLE
        and failing_for >= policy.token_failure_grace
    ):
        return give_up(Reason.TOKEN_UNAVAILABLE)
    if failure.kind in (ReadFailureKind.TRANSIENT, ReadFailureKind.MALFORMED):
        transient = sum(
            s.count
            for kind, s in state.streaks.items()
            if kind in (ReadFailureKind.TRANSIENT.value, ReadFailureKind.MALFORMED.value)
        )
        if transient > policy.max_transient_failures:
            return give_up(Reason.STATUS_UNREADABLE)
    return _again(
        request,
        state,
        now,
        policy,
        retry_after=failure.retry_after,
        remaining_reads=failure.remaining_reads,
        last_failure=failure,
    )


def _again(
    request: WatchRequest,
    state: PollState,
    now: datetime,
    policy: PollPolicy,
    *,
    retry_after: float | None,
    remaining_reads: int | None,
    last_read: StatusRead | None = None,
    last_failure: ReadFailure | None = None,
) -> Action:
    """Reschedule, or time out when the deadline has passed. ``last_read`` is this step's
    read when it succeeded (its progress aims the next look; its details go into a
    timed-out event), ``last_failure`` this step's failed read."""
    remaining = (state.deadline - now).total_seconds()
    if remaining <= 0:
        return Finish(
            Outcome(
                FinalStatus.TIMED_OUT,
                Reason.DEADLINE_EXCEEDED,
                last_failure.error if last_failure else None,
                arm_status=state.last_status,
                detail=last_failure.detail if last_failure else None,
                start_time=last_read.start_time if last_read else None,
                operation_name=last_read.name if last_read else None,
                resource_id=last_read.resource_id if last_read else None,
                percent_complete=last_read.percent_complete if last_read else None,
            ),
            request,
        )
    delay = poll_delay(
        policy,
        elapsed=(now - state.first_seen).total_seconds(),
        consecutive_failures=state.consecutive_failures,
        retry_after=retry_after,
        remaining_reads=remaining_reads,
        jitter=jitter_fraction(request.watch_key, state.attempt),
        percent_complete=last_read.percent_complete if last_read else None,
        since_start=_since_start(last_read.start_time, now) if last_read else None,
    )
    # One last look exactly at the deadline rather than overshooting it.
    delay = min(delay, remaining)
    return Reschedule(delay, now + timedelta(seconds=delay), request)
