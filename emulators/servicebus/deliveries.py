"""Deliveries between clients and the broker, as AMQP transfers and dispositions.

This module owns what the emulator does with a message a client sends (decode, batch
split, size check with a batch counted as the SDK counts it, hand to ``Broker.send``,
then accept or reject the transfer) and with a client's disposition of a message it was
sent (``accepted`` completes, ``modified`` abandons or defers, ``rejected`` dead-letters,
``released`` or settling without an outcome gives it back), echoed settled as SDK 7.15
waits for. The reactor handler (``amqp``) calls these and offers messages to receivers
afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any

from proton import Delivery

from .broker import Broker, BrokerError
from .codec import DATA, MalformedMessageError, ParsedMessage, parse_message, split_batch, to_plain
from .connections import condition as make_condition

__all__ = ["accept_transfer", "apply_disposition", "batch_size", "reject"]


def accept_transfer(broker: Broker, delivery: Any, address: str, raw: bytes) -> bool:
    """A client sent ``raw`` (one message or a batch) to ``address``: hand it to the broker
    and settle the transfer accepted, or rejected with the broker's (or the size limit's,
    or the decoder's) error. True if the broker took it."""
    limit = broker.max_message_size(address)
    try:
        message = parse_message(raw)
        batch = split_batch(message)
        size = len(raw) if batch is None else batch_size(message)
        if size > limit:
            # Service Bus's wording; the SDK maps the condition to MessageSizeExceededError.
            reject(
                delivery,
                "amqp:link:message-size-exceeded",
                f"The received message (size:{size} bytes) exceeds the limit "
                f"({limit} bytes) currently allowed on the link.",
            )
            return False
        broker.send(address, batch or [message])
    except MalformedMessageError as exc:
        reject(delivery, "amqp:decode-error", str(exc))
        return False
    except BrokerError as exc:
        reject(delivery, exc.condition, exc.description)
        return False
    delivery.update(Delivery.ACCEPTED)
    delivery.settle()
    return True


def batch_size(envelope: ParsedMessage) -> int:
    """A batch's size as azure-servicebus counts it against the link's limit: its data
    sections only (one per message, each the message's encoding plus 5 or 8 bytes).

    ``ServiceBusMessageBatch`` starts from the encoded size of an empty envelope (0 bytes)
    and adds ``encoded size + (5 if < 256 else 8)`` per message (7.15,
    ``_common/message.py`` ``_add``, ``_BATCH_MESSAGE_OVERHEAD_COST``); it then copies the
    first message's message-id, group-id and partition key onto the envelope
    (``set_batch_envelope_properties``, since azure-sdk-for-python#42598) without counting
    them: 20 + len(message-id) bytes more on the wire. Counting the whole transfer would
    refuse batches the SDK built as fitting.
    """
    return sum(len(section.raw) for section in envelope.sections if section.code == DATA)


def reject(delivery: Any, condition: str, description: str) -> None:
    """Settle a transfer rejected with this AMQP error."""
    delivery.local.condition = make_condition(condition, description)
    delivery.update(Delivery.REJECTED)
    delivery.settle()


def apply_disposition(broker: Broker, delivery: Any, *, receive_and_delete: bool) -> bool:
    """The client settled (or updated) a message we delivered: apply its outcome in the
    broker and echo it settled. True if what is receivable may have changed."""
    token: uuid.UUID | None = getattr(delivery, "sb_lock_token", None)
    state = delivery.remote_state
    if token is None or receive_and_delete:
        if delivery.remote_settled:
            delivery.settle()
        return False
    if state is None or state == Delivery.RECEIVED:
        if delivery.remote_settled:  # settled without an outcome: give it back
            broker.release(token)
            delivery.settle()
            return True
        return False
    remote = delivery.remote
    try:
        if state == Delivery.ACCEPTED:
            broker.complete(token)
        elif state == Delivery.RELEASED:
            broker.release(token)
        elif state == Delivery.MODIFIED:
            if remote.undeliverable:
                broker.defer(token)
            else:
                broker.abandon(token)
            delivery.local.failed = remote.failed
            delivery.local.undeliverable = remote.undeliverable
        elif state == Delivery.REJECTED:
            reason, description = _dead_letter_details(remote.condition)
            broker.dead_letter(token, reason, description)
            delivery.local.condition = None  # an echo with an error reads as failure
        delivery.update(state)
    except BrokerError as exc:  # lock lost, or dead-lettering a dead letter
        delivery.local.condition = make_condition(exc.condition, exc.description)
        delivery.update(Delivery.REJECTED)
    delivery.settle()
    return True


def _dead_letter_details(condition: Any) -> tuple[str | None, str | None]:
    """Reason and description from a ``rejected`` outcome's ``com.microsoft:dead-letter``
    error (the SDK puts them in the error's info map)."""
    if condition is None:
        return None, None
    info = to_plain(condition.info) if condition.info else {}
    reason = info.get("DeadLetterReason") if isinstance(info, dict) else None
    description = info.get("DeadLetterErrorDescription") if isinstance(info, dict) else None
    if description is None:
        description = condition.description
    return (
        None if reason is None else str(reason),
        None if description is None else str(description),
    )
