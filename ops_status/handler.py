"""handle_watch_message: one queue message in, exactly one follow-up out.

The imperative shell around ``decide``. Every host (the Functions triggers, the
standalone worker, tests) calls this one function with an ``InboundMessage``:

1. parse the body: a submission from the intake queue (``parse_watch_request``; it is
   then admitted: watch id from the broker's identity of the message, deadline fixed
   from the broker's enqueued time), or a follow-up from the polls queue
   (``parse_poll_message``). An invalid one becomes a rejection event and the function
   returns normally, so the message is completed (no redelivery loop, nothing dropped);
2. read the operation's status from ARM (a failed token request is a failed read);
3. ``decide``;
4. send the follow-up: the next poll (scheduled, on the polls queue) or the terminal
   event (on the topic).

It returns only after the follow-up is sent. It raises ``ServiceBusSendError`` when the
follow-up could not be sent, after waiting ``delivery_count x OPS_STATUS_SEND_RETRY_DELAY``
(capped): the host then abandons the message and Service Bus redelivers it at once, so
the wait is what spaces the deliveries out. Anything else it raises is a bug.
Deterministic MessageIds make every repeat harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from azure.core.credentials import TokenCredential

from ops_status.clock import utcnow
from ops_status.decision import Finish, decide
from ops_status.errors import InvalidWatchRequestError, ServiceBusSendError
from ops_status.events import (
    OutboundMessage,
    build_rejection_event,
    build_terminal_event,
    build_watch_message,
)
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import bind, log
from ops_status.observation import Observation
from ops_status.request import (
    WatchRequest,
    parse_poll_message,
    parse_watch_request,
    recover_watch_ids,
)
from ops_status.servicebus import Outputs
from ops_status.settings import FUNCTION_TIMEOUT, MAX_SEND_RETRY_WAIT, RUN_MARGIN, Settings

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
    sleep: Callable[[float], None] = time.sleep
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


def handle_watch_message(message: InboundMessage, dependencies: Dependencies) -> HandlingResult:
    """Handle one message end to end; see the module docstring for the contract.

    Example::

        result = handle_watch_message(
            InboundMessage.from_functions(message, Queue.INTAKE), get_dependencies()
        )
    """
    started = dependencies.clock()
    with bind(message_id=message.message_id, delivery_count=message.delivery_count):
        try:
            return _handle(message, dependencies)
        except ServiceBusSendError:
            _wait_before_redelivery(message, dependencies, started)
            raise


def _handle(message: InboundMessage, dependencies: Dependencies) -> HandlingResult:
    settings = dependencies.settings
    try:
        if message.body_problem is not None:
            raise InvalidWatchRequestError([message.body_problem])
        if message.queue is Queue.INTAKE:
            request = parse_watch_request(
                message.body, arm_endpoint=settings.arm_endpoint, policy=settings.policy
            )
        else:
            request = parse_poll_message(
                message.body, arm_endpoint=settings.arm_endpoint, policy=settings.policy
            )
    except InvalidWatchRequestError as exc:
        return _reject(message, exc, dependencies)

    if message.queue is Queue.INTAKE:
        now = dependencies.clock()
        # The deadline runs from when the broker accepted the submission, not from when
        # a (possibly backlogged) handler first saw it; never from a time in our future.
        enqueued = message.enqueued_time
        first_seen = min(enqueued, now) if enqueued is not None else now
        request = request.admitted(
            message.delivery_key,
            submission_id=message.message_id,
            first_seen=first_seen,
            policy=settings.policy,
        )

    with bind(
        watch_id=request.watch_id,
        operation_id=request.target.operation_id,
        correlation_id=request.correlation_id,
    ):
        observation = dependencies.status_reader.get_operation_status(request)
        now = dependencies.clock()
        redelivered = (message.delivery_count or 1) > 1
        action = decide(request, observation, now, settings.policy, redelivered=redelivered)
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

        poll: OutboundMessage = build_watch_message(action)
        dependencies.outputs.schedule_poll(poll, action.not_before)
        state = action.next_request.state
        assert state is not None  # decide always returns a request with state
        log(
            logger,
            logging.INFO,
            "watch.rescheduled",
            status=state.last_status,
            polls=state.attempt,
            delay_s=action.delay,
            next_message_id=poll.message_id,
            failures=state.consecutive_failures or None,
        )
        return HandlingResult(
            "rescheduled",
            poll.message_id,
            state.last_status,
            action.not_before,
            state.attempt,
        )


def _reject(
    message: InboundMessage, error: InvalidWatchRequestError, dependencies: Dependencies
) -> HandlingResult:
    key, watch_id, submission_id = message.delivery_key, None, message.message_id
    if message.queue is Queue.POLLS:
        watch_id, submission_id = recover_watch_ids(message.body)
        key = watch_id or key
    event = build_rejection_event(
        message.body,
        error.errors,
        key=key,
        now=dependencies.clock(),
        delivery_id=message.message_id,
        submission_id=submission_id,
        watch_id=watch_id,
    )
    with bind(correlation_id=event.correlation_id):
        dependencies.outputs.send_event(event)
        log(
            logger,
            logging.WARNING,
            "watch.rejected",
            queue=message.queue.value,
            errors="; ".join(error.errors),
            event_id=event.message_id,
        )
    return HandlingResult("rejected", event.message_id, "Rejected")


def _wait_before_redelivery(
    message: InboundMessage, dependencies: Dependencies, started: datetime
) -> None:
    """Hold the message (its lock renewed by the host) before giving it back.

    Abandon means immediate redelivery: without this wait a Service Bus hiccup spends
    MaxDeliveryCount (10) in seconds. Delivery n waits n x ``send_retry_delay``: with 15 s,
    the 10th delivery starts 15 x (1 + ... + 9) = 675 s after the first. The wait never
    runs past functionTimeout: a run the host times out is recycled with its worker.
    """
    delivery = max(message.delivery_count or 1, 1)
    elapsed = (dependencies.clock() - started).total_seconds()
    left = max(FUNCTION_TIMEOUT - RUN_MARGIN - elapsed, 0.0)
    wait = min(delivery * dependencies.settings.send_retry_delay, MAX_SEND_RETRY_WAIT, left)
    log(logger, logging.WARNING, "watch.send_failed_waiting", wait_s=wait, delivery=delivery)
    dependencies.sleep(wait)
