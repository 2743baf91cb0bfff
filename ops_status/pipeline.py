"""The pipeline side of ops-status: submit a watch, or follow an operation to its end.

Both reuse the function's own pieces, so a pipeline step judges exactly as the function
does:

- ``prepare_watch`` validates with ``parse_watch_request`` (the configured ARM endpoint
  and poll policy), so a bad request fails in the pipeline step, not later as a
  ``Rejected`` event;
- ``submit_watch`` puts the submission on the intake queue with the MessageId
  ``submission_key`` (a hash of the operation and the correlation id), so a retried step
  is dropped by the intake queue's duplicate detection;
- ``follow_operation`` polls in-process with the same ``StatusReader`` and ``decide`` the
  function uses (same delays, same Retry-After handling, same deadline), for pipelines
  that prefer to block. It needs no Service Bus. Its reads are one trace, like a queued
  watch's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ops_status import tracing
from ops_status.clock import utcnow
from ops_status.decision import Action, Finish, decide
from ops_status.events import WATCH_CONTENT_TYPE, OutboundMessage
from ops_status.handler import StatusReader
from ops_status.observation import Observation
from ops_status.request import WatchRequest, parse_watch_request, submission_key
from ops_status.servicebus import Intake
from ops_status.settings import ArmSettings
from ops_status.traceparent import TraceContext

__all__ = [
    "PollReport",
    "follow_operation",
    "initial_watch_message",
    "prepare_watch",
    "submit_watch",
]


def prepare_watch(body: Mapping[str, Any], settings: ArmSettings) -> WatchRequest:
    """Validate a watch request body exactly as the function will.

    Raises ``InvalidWatchRequestError`` listing every problem.
    """
    raw = json.dumps(body, separators=(",", ":")).encode()
    return parse_watch_request(raw, arm_endpoint=settings.arm_endpoint, policy=settings.policy)


def initial_watch_message(
    request: WatchRequest, *, trace: TraceContext | None = None
) -> OutboundMessage:
    """The submission: the validated body, MessageId ``submission_key(request)``.

    Submitting the same watch twice (same operation, same correlation id) within the
    intake queue's duplicate-detection window gives the same MessageId, which the queue
    drops. The watch id itself is given at intake, from the broker's identity of this
    message, so the function starts exactly one watch per kept submission. ``trace`` is
    the context the message carries (the ``send`` span's), where the watch's trace goes on.
    """
    return OutboundMessage(
        body=json.dumps(request.to_body(), separators=(",", ":")).encode(),
        message_id=submission_key(request),
        content_type=WATCH_CONTENT_TYPE,
        subject="watch",
        correlation_id=request.correlation_id,
        application_properties={"operationId": request.target.operation_id, "attempt": 0},
        trace=trace,
    )


def submit_watch(
    request: WatchRequest, outputs: Intake, *, trace: TraceContext | None = None
) -> OutboundMessage:
    """Put ``request`` on the intake queue, receivable at once; returns what was sent.

    Raises ``ServiceBusSendError`` when the send fails.
    """
    message = initial_watch_message(request, trace=trace)
    outputs.submit(message)
    return message


@dataclass(frozen=True)
class PollReport:
    """What one read of a followed operation found and what comes next."""

    observation: Observation
    action: Action
    now: datetime

    @property
    def request(self) -> WatchRequest:
        return self.action.request if isinstance(self.action, Finish) else self.action.next_request

    @property
    def polls(self) -> int:
        state = self.request.state
        return state.attempt if state else 0

    @property
    def elapsed(self) -> float:
        """Seconds since the first read."""
        state = self.request.state
        return (self.now - state.first_seen).total_seconds() if state else 0.0


def follow_operation(
    request: WatchRequest,
    reader: StatusReader,
    settings: ArmSettings,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[PollReport], None] | None = None,
) -> Finish:
    """Read the operation's status until ``decide`` says the watch is over.

    Waits between reads exactly as the function would (``Reschedule.not_before``) and
    stops at the request's deadline (``TimedOut``). Raises only what ``reader`` raises
    (the CLI's reader raises ``CredentialError`` when no token can be had).

    Example::

        finish = follow_operation(request, ArmClient(endpoint, credential), settings)
        finish.outcome.status        # FinalStatus.SUCCEEDED, ...

    The whole follow is one ``ops-status watch`` span (a child of the current one, if
    any), so its reads (``GET`` spans) are one trace, as a queued watch's are.
    """
    attributes = {"ops_status.operation_id": request.target.operation_id}
    with tracing.started_span("ops-status watch", attributes=attributes) as span:
        while True:
            observation = reader.get_operation_status(request)
            now = clock()
            action = decide(request, observation, now, settings.policy)
            if on_poll is not None:
                on_poll(PollReport(observation, action, now))
            if isinstance(action, Finish):
                state = action.request.state
                tracing.set_attributes(
                    span,
                    {
                        "ops_status.outcome": action.outcome.status.value,
                        "ops_status.attempt": state.attempt if state else None,
                    },
                )
                return action
            sleep(max((action.not_before - clock()).total_seconds(), 0.0))
            request = action.next_request
