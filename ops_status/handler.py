"""handle_watch_message: one queue message in, exactly one follow-up out.

The imperative shell around ``decide``. Every host (the Functions trigger, the
standalone worker, tests) calls this one function:

1. parse the body; an invalid one becomes a rejection event and the function returns
   normally, so the message is completed (no redelivery loop, nothing dropped);
2. read the operation's status from ARM;
3. ``decide``;
4. send the follow-up: the next watch (scheduled) or the terminal event.

It returns only after the follow-up is sent. It raises (``CredentialError``,
``ServiceBusSendError``, anything unexpected) when it could not finish: the host then
abandons the message and Service Bus redelivers it, or dead-letters it after
MaxDeliveryCount. Deterministic MessageIds make the repeat harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from azure.core.credentials import TokenCredential

from ops_status.clock import utcnow
from ops_status.decision import Finish, decide
from ops_status.errors import InvalidWatchRequestError
from ops_status.events import (
    build_rejection_event,
    build_terminal_event,
    build_watch_message,
)
from ops_status.logs import bind, log
from ops_status.observation import Observation
from ops_status.request import WatchRequest, parse_watch_request
from ops_status.servicebus import Outputs
from ops_status.settings import Settings

__all__ = ["Dependencies", "HandlingResult", "StatusReader", "handle_watch_message"]

logger = logging.getLogger(__name__)


class StatusReader(Protocol):
    """Reads an operation's status (``ArmClient`` in production)."""

    def get_operation_status(self, request: WatchRequest) -> Observation: ...


@dataclass(frozen=True)
class Dependencies:
    """What the handler needs from the outside world, assembled by ``bootstrap``."""

    settings: Settings
    status_reader: StatusReader
    outputs: Outputs
    clock: Callable[[], datetime] = utcnow
    credential: TokenCredential | None = None
    """The process's credential, when one was built (the worker's receiver shares it)."""


@dataclass(frozen=True)
class HandlingResult:
    """What one message led to. Hosts log it; the CLI and tests inspect it."""

    action: Literal["rescheduled", "finished", "rejected"]
    sent_message_id: str
    status: str | None = None
    """The terminal event's status, or the last ARM status while still running."""
    not_before: datetime | None = None
    polls: int = 0


def handle_watch_message(
    body: bytes,
    dependencies: Dependencies,
    *,
    message_id: str | None = None,
    delivery_count: int | None = None,
) -> HandlingResult:
    """Handle one watch message end to end; see the module docstring for the contract.

    Example::

        result = handle_watch_message(message.get_body(), get_dependencies(),
                                      message_id=message.message_id)
    """
    settings = dependencies.settings
    with bind(message_id=message_id, delivery_count=delivery_count):
        try:
            request = parse_watch_request(
                body, arm_endpoint=settings.arm_endpoint, policy=settings.policy
            )
        except InvalidWatchRequestError as exc:
            return _reject(body, exc, dependencies, message_id)

        with bind(operation_id=request.target.operation_id, correlation_id=request.correlation_id):
            observation = dependencies.status_reader.get_operation_status(request)
            now = dependencies.clock()
            action = decide(request, observation, now, settings.policy)
            if isinstance(action, Finish):
                event = build_terminal_event(action, arm_endpoint=settings.arm_endpoint, now=now)
                dependencies.outputs.send_event(event)
                state = action.request.state
                polls = state.attempt if state else 0
                log(
                    logger,
                    logging.INFO,
                    "watch.finished",
                    status=action.outcome.status.value,
                    reason=action.outcome.reason.value if action.outcome.reason else None,
                    polls=polls,
                    event_id=event.message_id,
                )
                return HandlingResult(
                    "finished", event.message_id, action.outcome.status.value, polls=polls
                )

            message = build_watch_message(action)
            dependencies.outputs.schedule_watch(message, action.not_before)
            state = action.next_request.state
            assert state is not None  # decide always returns a request with state
            log(
                logger,
                logging.INFO,
                "watch.rescheduled",
                status=state.last_status,
                polls=state.attempt,
                delay_s=action.delay,
                next_message_id=message.message_id,
                failures=state.consecutive_failures or None,
            )
            return HandlingResult(
                "rescheduled",
                message.message_id,
                state.last_status,
                action.not_before,
                state.attempt,
            )


def _reject(
    body: bytes, error: InvalidWatchRequestError, dependencies: Dependencies, message_id: str | None
) -> HandlingResult:
    event = build_rejection_event(
        body, error.errors, now=dependencies.clock(), delivery_id=message_id
    )
    with bind(correlation_id=event.correlation_id):
        dependencies.outputs.send_event(event)
        log(
            logger,
            logging.WARNING,
            "watch.rejected",
            errors="; ".join(error.errors),
            event_id=event.message_id,
        )
    return HandlingResult("rejected", event.message_id, "Rejected")
