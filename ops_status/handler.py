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

Telemetry sits at the same seams (``tracing``, ``metrics``), never in the core: each
message is a ``process`` span, child of the trace context the message carries; the ARM
read is its ``GET`` child (``arm.py``); the follow-up is sent inside a ``send`` span
whose context the follow-up carries on (and the terminal CloudEvent in its
``traceparent``). The step's outcome (attempt, ARM status, HTTP status, throttling, the
delay chosen, the watch's outcome) is set on the ``process`` span, and the metrics are
recorded here from the step's own results, after its follow-up was sent.

Why it is long (~450 lines): the shell's four steps plus the telemetry of each step
(span attributes, metrics), kept beside the step they describe rather than in a module
that would have to re-derive what the step did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from azure.core.credentials import TokenCredential
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ops_status import tracing
from ops_status.clock import parse_time, utcnow
from ops_status.decision import Action, Finish, decide
from ops_status.errors import InvalidWatchRequestError, ServiceBusSendError
from ops_status.events import (
    OutboundMessage,
    build_rejection_event,
    build_terminal_event,
    build_watch_message,
)
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import bind, log
from ops_status.metrics import WatchMetrics, default_metrics, pipeline_of
from ops_status.observation import Observation, ReadFailure, ReadFailureKind, StatusRead
from ops_status.request import (
    WatchRequest,
    parse_poll_message,
    parse_watch_request,
    recover_watch_ids,
)
from ops_status.servicebus import Outputs
from ops_status.settings import FUNCTION_TIMEOUT, MAX_SEND_RETRY_WAIT, RUN_MARGIN, Settings
from ops_status.traceparent import TraceContext

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
    metrics: WatchMetrics = field(default_factory=default_metrics)
    """Where the step's numbers go (the process-wide instruments unless a test passes its own)."""


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
    started_monotonic = time.monotonic()  # for the handler duration: immune to clock steps
    settings = dependencies.settings
    queue = settings.intake_queue if message.queue is Queue.INTAKE else settings.polls_queue
    server = tracing.service_bus_address(
        settings.service_bus_namespace, settings.service_bus_connection_string
    )
    enqueued = message.enqueued_time
    handled_as, error_type = "error", None
    with (
        bind(message_id=message.message_id, delivery_count=message.delivery_count),
        tracing.consuming(
            queue,
            creation=message.trace_context,
            server=server,
            attributes={
                "messaging.message.id": message.message_id,
                "messaging.servicebus.message.delivery_count": message.delivery_count,
                "messaging.servicebus.message.enqueued_time": int(enqueued.timestamp())
                if enqueued is not None
                else None,
            },
        ) as span,
    ):
        step = _Step(message, dependencies, span, server)
        try:
            result = _handle(step)
            handled_as = result.action
            return result
        except ServiceBusSendError as exc:
            handled_as, error_type = "send_failed", tracing.error_type(exc)
            _wait_before_redelivery(message, dependencies, started)
            raise
        except BaseException as exc:
            error_type = tracing.error_type(exc)
            raise
        finally:
            dependencies.metrics.message_handled(
                time.monotonic() - started_monotonic,
                destination=queue,
                action=handled_as,
                error_type=error_type,
            )


@dataclass(frozen=True)
class _Step:
    """One message being handled, with what its telemetry needs."""

    message: InboundMessage
    dependencies: Dependencies
    span: Span
    """The ``process`` span of this message."""
    server: tuple[str | None, int | None]
    """``server.address`` / ``server.port`` of the namespace, for the ``send`` spans."""

    def send(
        self,
        destination: str,
        build: Callable[[TraceContext], OutboundMessage],
        deliver: Callable[[OutboundMessage], None],
        *,
        cloudevent: bool = False,
    ) -> OutboundMessage:
        """Build the follow-up inside its ``send`` span (it carries that span's context)
        and send it; a failed send is counted and re-raised."""
        with tracing.producing(destination, server=self.server) as outgoing:
            outbound = build(outgoing.context)
            outgoing.describe(
                message_id=outbound.message_id,
                conversation_id=outbound.correlation_id,
                body_size=len(outbound.body),
                cloudevent_type=outbound.subject if cloudevent else None,
            )
            try:
                with bind(correlation_id=outbound.correlation_id):
                    deliver(outbound)
            except ServiceBusSendError as exc:
                self.dependencies.metrics.send_failed(
                    destination=destination, error_type=tracing.error_type(exc)
                )
                raise
        return outbound


def _handle(step: _Step) -> HandlingResult:
    message, dependencies = step.message, step.dependencies
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
        return _reject(step, exc)

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

    pipeline = pipeline_of(request.context)
    tracing.set_attributes(
        step.span,
        {
            "ops_status.watch_id": request.watch_id,
            "ops_status.operation_id": request.target.operation_id,
            "ops_status.subscription_id": request.target.subscription_id,
            "ops_status.pipeline": pipeline,
            "messaging.message.conversation_id": request.correlation_id,
        },
    )
    with bind(
        watch_id=request.watch_id,
        operation_id=request.target.operation_id,
        correlation_id=request.correlation_id,
    ):
        observation = dependencies.status_reader.get_operation_status(request)
        _observed(step, request, observation)
        now = dependencies.clock()
        redelivered = (message.delivery_count or 1) > 1
        action = decide(request, observation, now, settings.policy, redelivered=redelivered)
        _decided(step.span, action)
        if isinstance(action, Finish):
            event = step.send(
                settings.events_topic,
                lambda trace: build_terminal_event(
                    action, arm_endpoint=settings.arm_endpoint, now=now, trace=trace
                ),
                dependencies.outputs.send_event,
                cloudevent=True,
            )
            state = action.request.state
            polls = state.attempt if state else 0
            _finished(step, action, pipeline, polls)
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

        poll = step.send(
            settings.polls_queue,
            lambda trace: build_watch_message(action, trace=trace),
            lambda outbound: dependencies.outputs.schedule_poll(outbound, action.not_before),
        )
        if message.queue is Queue.INTAKE:
            dependencies.metrics.watch_started(pipeline=pipeline)
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


def _observed(step: _Step, request: WatchRequest, observation: Observation) -> None:
    """What the read said, on the step's span and in the read-budget metrics."""
    failure = observation if isinstance(observation, ReadFailure) else None
    throttled = failure is not None and failure.kind is ReadFailureKind.THROTTLED
    token_failed = failure is not None and failure.kind is ReadFailureKind.TOKEN_UNAVAILABLE
    http_status = failure.http_status if failure else 200
    tracing.set_attributes(
        step.span,
        {
            "ops_status.arm_status": observation.status
            if isinstance(observation, StatusRead)
            else None,
            "http.response.status_code": None if token_failed else http_status,
            "ops_status.read_failure": failure.kind.value if failure else None,
            "ops_status.throttled": throttled,
            "ops_status.remaining_reads": observation.remaining_reads,
        },
    )
    step.dependencies.metrics.read_observed(
        throttled=throttled,
        token_failed=token_failed,
        remaining_reads=observation.remaining_reads,
        subscription_id=request.target.subscription_id,
    )


def _decided(span: Span, action: Action) -> None:
    """The decision, on the step's span: the attempt, and the delay or the outcome."""
    if isinstance(action, Finish):
        state, outcome = action.request.state, action.outcome
        values: dict[str, AttributeValue | None] = {
            "ops_status.action": "finished",
            "ops_status.outcome": outcome.status.value,
            "ops_status.reason": outcome.reason.value if outcome.reason else None,
        }
    else:
        state = action.next_request.state
        values = {"ops_status.action": "rescheduled", "ops_status.poll.delay": action.delay}
    values["ops_status.attempt"] = state.attempt if state else None
    tracing.set_attributes(span, values)


def _finished(step: _Step, action: Finish, pipeline: str | None, polls: int) -> None:
    """The terminal event is out: count the watch, how long it took and how late we saw it."""
    dependencies = step.dependencies
    published = dependencies.clock()
    state, outcome = action.request.state, action.outcome
    duration = (published - state.first_seen).total_seconds() if state else None
    lag = _detection_lag(outcome.end_time, published)
    tracing.set_attributes(
        step.span, {"ops_status.watch.duration": duration, "ops_status.detection_lag": lag}
    )
    if step.message.queue is Queue.INTAKE:
        dependencies.metrics.watch_started(pipeline=pipeline)
    dependencies.metrics.watch_finished(
        outcome=outcome.status.value,
        reason=outcome.reason.value if outcome.reason else None,
        pipeline=pipeline,
        reads=polls,
        duration=duration,
        detection_lag=lag,
    )


def _detection_lag(end_time: str | None, published: datetime) -> float | None:
    """Seconds from ARM's ``endTime`` to the event being out; None when ARM gave none, or
    an unreadable one, or one ahead of our clock (skew: no lag to report)."""
    if end_time is None:
        return None
    try:
        lag = (published - parse_time(end_time)).total_seconds()
    except (ValueError, OverflowError):
        return None
    return lag if lag >= 0 else None


def _reject(step: _Step, error: InvalidWatchRequestError) -> HandlingResult:
    message, dependencies = step.message, step.dependencies
    key, watch_id, submission_id = message.delivery_key, None, message.message_id
    if message.queue is Queue.POLLS:
        watch_id, submission_id = recover_watch_ids(message.body)
        key = watch_id or key
    now = dependencies.clock()
    event = step.send(
        dependencies.settings.events_topic,
        lambda trace: build_rejection_event(
            message.body,
            error.errors,
            key=key,
            now=now,
            delivery_id=message.message_id,
            submission_id=submission_id,
            watch_id=watch_id,
            trace=trace,
        ),
        dependencies.outputs.send_event,
        cloudevent=True,
    )
    tracing.set_attributes(
        step.span,
        {
            "ops_status.action": "rejected",
            "ops_status.outcome": "Rejected",
            "ops_status.reason": "InvalidWatchRequest",
            "ops_status.watch_id": watch_id,
            "messaging.message.conversation_id": event.correlation_id,
        },
    )
    if message.queue is Queue.INTAKE:
        # A rejected submission starts and finishes at once: started - finished stays
        # the number of watches in flight.
        dependencies.metrics.watch_started(pipeline=None)
    dependencies.metrics.watch_finished(
        outcome="Rejected",
        reason="InvalidWatchRequest",
        pipeline=None,
        reads=0,
        duration=None,
        detection_lag=None,
    )
    with bind(correlation_id=event.correlation_id):
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
