"""ServiceBusOutputClient: sends the handler's follow-ups with the azure-servicebus SDK.

Two outputs, two methods: ``schedule_poll`` puts the next poll on the polls queue
with a scheduled enqueue time; ``send_event`` publishes a terminal or rejection event
on the topic. ``ServiceBusIntakeClient.submit`` is the pipeline's side, for the CLI: a
fresh watch on the intake queue (the app itself never sends there). The Functions output
binding can do neither: it cannot schedule or set properties.

One ``ServiceBusClient`` per process and one sender per entity, opened on first use
and kept: opening costs a connection and a CBS handshake. The SDK documents no thread
safety for senders while the Functions worker calls us from a thread pool, so each
sender is used under its own lock. A sender that failed is closed and reopened on the
next call, so a dropped connection costs one redelivery, not a stuck process.

Every message carries its trace context as Service Bus defines it: the ``Diagnostic-Id``
and ``traceparent`` application properties (both the W3C ``traceparent`` value) and
``tracestate`` when there is one, from ``OutboundMessage.trace`` (the ``send`` span the
handler opened). That is what azure-servicebus itself stamps (``_common/tracing.py``,
``trace_message``), with the same ``bytes`` keys, but its stamping runs only with the
``azure-core-tracing-opentelemetry`` plugin configured as azure-core's
``tracing_implementation`` (azure-servicebus 7.15 does not use azure-core's native
``tracing_enabled``), a beta package the product does not depend on. Should a host
configure the plugin anyway, the SDK's ``setdefault`` keeps these values.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any, Protocol

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender

from ops_status.errors import ServiceBusSendError
from ops_status.events import OutboundMessage
from ops_status.logs import log
from ops_status.settings import SEND_TIMEOUT
from ops_status.traceparent import TraceContext

__all__ = [
    "Intake",
    "Outputs",
    "ServiceBusIntakeClient",
    "ServiceBusOutputClient",
    "trace_properties",
]

logger = logging.getLogger(__name__)


class Outputs(Protocol):
    """Where the handler's follow-ups go. Tests pass an in-memory recorder."""

    def schedule_poll(self, message: OutboundMessage, enqueue_at: datetime) -> None:
        """Put ``message`` on the polls queue, receivable from ``enqueue_at``."""

    def send_event(self, message: OutboundMessage) -> None:
        """Publish ``message`` on the events topic."""


class Intake(Protocol):
    """Where a pipeline submits a watch (the CLI's ``submit``). Tests pass a recorder."""

    def submit(self, message: OutboundMessage) -> None:
        """Put ``message`` on the intake queue, receivable at once."""


class ServiceBusOutputClient:
    """Sends to the polls queue and the events topic of one namespace.

    Example::

        client = ServiceBusClient("contoso.servicebus.windows.net", credential)
        outputs = ServiceBusOutputClient(client, polls_queue="polls", topic="events")
        outputs.send_event(message)
    """

    def __init__(self, client: ServiceBusClient, *, polls_queue: str, topic: str) -> None:
        self._senders = _Senders(client, queues={polls_queue}, topics={topic})
        self._polls_queue = polls_queue
        self._topic = topic

    def schedule_poll(self, message: OutboundMessage, enqueue_at: datetime) -> None:
        sb_message = _to_sdk(
            message, scheduled_enqueue_time_utc=enqueue_at.astimezone(timezone.utc)
        )
        self._senders.send(self._polls_queue, sb_message, message)

    def send_event(self, message: OutboundMessage) -> None:
        self._senders.send(self._topic, _to_sdk(message), message)

    def close(self) -> None:
        self._senders.close()


class ServiceBusIntakeClient:
    """The pipeline's side (the CLI's ``submit``): sends fresh watches to the intake queue.

    Example::

        intake = ServiceBusIntakeClient(client, intake_queue="ops-status-intake")
        intake.submit(message)
    """

    def __init__(self, client: ServiceBusClient, *, intake_queue: str) -> None:
        self._senders = _Senders(client, queues={intake_queue}, topics=set())
        self._intake_queue = intake_queue

    def submit(self, message: OutboundMessage) -> None:
        """Put a fresh watch on the intake queue, receivable at once (by the broker's clock:
        a runner whose clock runs ahead cannot delay the first read)."""
        self._senders.send(self._intake_queue, _to_sdk(message), message)

    def close(self) -> None:
        self._senders.close()


class _Senders:
    """One sender per entity, opened on first use, each used under its own lock."""

    def __init__(self, client: ServiceBusClient, *, queues: set[str], topics: set[str]) -> None:
        self._client = client
        self._queues = queues
        self._senders: dict[str, ServiceBusSender] = {}
        self._locks = {entity: threading.Lock() for entity in queues | topics}

    def send(self, entity: str, sb_message: ServiceBusMessage, message: OutboundMessage) -> None:
        with self._locks[entity]:
            sender = self._senders.get(entity)
            if sender is None:
                sender = (
                    self._client.get_queue_sender(entity)
                    if entity in self._queues
                    else self._client.get_topic_sender(entity)
                )
                self._senders[entity] = sender
            try:
                # Bounded: the SDK's default is no overall timeout for its retries.
                sender.send_messages(sb_message, timeout=SEND_TIMEOUT)
            except (AzureError, OSError) as exc:
                # The SDK has already retried; start afresh next time.
                self._senders.pop(entity, None)
                _close_quietly(sender)
                log(
                    logger,
                    logging.WARNING,
                    "servicebus.send_failed",
                    entity=entity,
                    sent_message_id=message.message_id,
                    error=type(exc).__name__,
                )
                raise ServiceBusSendError(
                    f"sending {message.message_id} to {entity} failed: {exc}"
                ) from exc
        log(
            logger,
            logging.DEBUG,  # the handler's INFO line names what was sent
            "servicebus.sent",
            entity=entity,
            sent_message_id=message.message_id,
            size=len(message.body),
        )

    def close(self) -> None:
        for entity, lock in self._locks.items():
            with lock:
                sender = self._senders.pop(entity, None)
                if sender is not None:
                    _close_quietly(sender)
        self._client.close()


def _to_sdk(message: OutboundMessage, **extra: Any) -> ServiceBusMessage:
    properties: dict[str | bytes, Any] = {k: v for k, v in message.application_properties.items()}
    if message.trace is not None:
        properties.update(trace_properties(message.trace))
    return ServiceBusMessage(
        message.body,
        message_id=message.message_id,
        content_type=message.content_type,
        subject=message.subject,
        correlation_id=message.correlation_id,
        application_properties=properties,
        **extra,
    )


def trace_properties(context: TraceContext) -> dict[str | bytes, str]:
    """The application properties that carry ``context``, keyed as azure-servicebus keys
    them (``Diagnostic-Id`` is what the Functions host and older SDKs read)."""
    properties: dict[str | bytes, str] = {
        b"Diagnostic-Id": context.traceparent,
        b"traceparent": context.traceparent,
    }
    if context.tracestate:
        properties[b"tracestate"] = context.tracestate
    return properties


def _close_quietly(sender: ServiceBusSender) -> None:
    try:
        sender.close()
    except Exception:
        logger.debug("closing a failed sender raised", exc_info=True)
