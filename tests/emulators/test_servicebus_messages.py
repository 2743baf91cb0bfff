"""Sending and receiving through the SDK: properties round-trip, batches, size limit, modes."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusMessageState,
    ServiceBusReceiveMode,
)
from azure.servicebus.amqp import AmqpAnnotatedMessage, AmqpMessageBodyType
from azure.servicebus.exceptions import MessageSizeExceededError

from emulators.servicebus import MessageState, ServiceBusEmulator

from .conftest import QUEUE, queue_receiver, queue_sender, receive_exactly, receive_nothing


def test_message_fields_round_trip_intact(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a message with every field the product relies on
    scheduled = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)  # past: enqueue now
    sent = ServiceBusMessage(
        b'{"operationId": "op-1"}',
        message_id="watch-op-1-attempt-2",
        correlation_id="corr-7",
        subject="watch",
        content_type="application/json",
        time_to_live=dt.timedelta(minutes=5),
        scheduled_enqueue_time_utc=scheduled,
        to="somewhere",
        reply_to="replies",
        application_properties={"attempt": 2, "kind": "watch", "ratio": 0.5, "final": False},
    )

    # when it is sent and received
    with queue_sender(client) as sender:
        sender.send_messages(sent)
    with queue_receiver(client) as receiver:
        (got,) = receive_exactly(receiver, 1)
        lock_token, locked_until = got.lock_token, got.locked_until_utc
        receiver.complete_message(got)

    # then everything the sender set comes back as it was sent
    assert b"".join(got.body) == b'{"operationId": "op-1"}'
    assert got.message_id == "watch-op-1-attempt-2"
    assert got.correlation_id == "corr-7"
    assert got.subject == "watch"
    assert got.content_type == "application/json"
    assert got.time_to_live == dt.timedelta(minutes=5)
    assert got.to == "somewhere"
    assert got.reply_to == "replies"
    assert got.application_properties == {
        b"attempt": 2,
        b"kind": b"watch",
        b"ratio": 0.5,
        b"final": False,
    }
    assert got.scheduled_enqueue_time_utc is not None
    assert abs((got.scheduled_enqueue_time_utc - scheduled).total_seconds()) < 0.01
    # and the broker's own fields are present
    assert got.sequence_number == 1
    assert got.delivery_count == 0
    assert got.enqueued_time_utc is not None
    assert locked_until is not None
    assert locked_until > dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20)
    assert isinstance(lock_token, uuid.UUID)
    assert got.state == ServiceBusMessageState.ACTIVE


def test_value_bodies_round_trip(client: ServiceBusClient) -> None:
    # given an AMQP message whose body is a value (not bytes)
    sent = AmqpAnnotatedMessage(value_body={"nested": [1, 2, 3]})
    with queue_sender(client) as sender:
        sender.send_messages(sent)
    # when it is received, then the body type and value are unchanged
    with queue_receiver(client) as receiver:
        (got,) = receive_exactly(receiver, 1)
        receiver.complete_message(got)
    assert got.body_type == AmqpMessageBodyType.VALUE
    assert got.body == {b"nested": [1, 2, 3]}


def test_batch_from_create_message_batch_enqueues_each_message(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a batch of three messages built with create_message_batch
    with queue_sender(client) as sender:
        batch = sender.create_message_batch()
        for i in range(3):
            batch.add_message(
                ServiceBusMessage(f"m{i}", message_id=f"id-{i}", application_properties={"i": i})
            )
        # when the batch is sent (one transfer, message-format 0x80013700)
        sender.send_messages(batch)

    # then the broker stored three separate messages, in order, with their own properties
    stored = emulator.peek_all(QUEUE)
    assert [m.text for m in stored] == ["m0", "m1", "m2"]
    assert [m.message_id for m in stored] == ["id-0", "id-1", "id-2"]
    assert [m.application_properties for m in stored] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert emulator.sent_count(QUEUE) == 3


def test_list_send_is_a_batch_too(emulator: ServiceBusEmulator, client: ServiceBusClient) -> None:
    # given a list of messages, when it is sent in one call
    with queue_sender(client) as sender:
        sender.send_messages([ServiceBusMessage(b"a"), ServiceBusMessage(b"b")])
    # then both are stored as individual messages
    assert [m.text for m in emulator.peek_all(QUEUE)] == ["a", "b"]
    assert emulator.sent_count(QUEUE) == 2


def test_message_over_256kb_raises_message_size_exceeded(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a sender, when it sends one message over the Standard tier's 256 KB
    with queue_sender(client) as sender:
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * (256 * 1024 + 1)))
        # then nothing is stored, and the link still works for a message that fits
        sender.send_messages(ServiceBusMessage(b"x" * (200 * 1024)))
    assert emulator.sent_count(QUEUE) == 1
    assert emulator.active_count(QUEUE) == 1


def test_batch_is_capped_at_the_advertised_link_limit(client: ServiceBusClient) -> None:
    # given a batch (sized by the SDK from the link's max-message-size)
    with queue_sender(client) as sender:
        batch = sender.create_message_batch()
        assert batch.max_size_in_bytes == 256 * 1024
        batch.add_message(ServiceBusMessage(b"x" * (200 * 1024)))
        # when a message that would overflow it is added, then the SDK refuses it
        with pytest.raises(MessageSizeExceededError):
            batch.add_message(ServiceBusMessage(b"x" * (100 * 1024)))
        # and a list over the limit is refused the same way
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(
                [ServiceBusMessage(b"x" * (200 * 1024)), ServiceBusMessage(b"y" * (100 * 1024))]
            )


def _fill_to_the_limit(batch: ServiceBusMessageBatch, message_id: str) -> None:
    """Add one message with ``message_id`` and then the largest message that still fits,
    so the SDK's own count ends within a few bytes of ``batch.max_size_in_bytes``."""
    batch.add_message(ServiceBusMessage(b"a" * 1000, message_id=message_id))
    padding = batch.max_size_in_bytes - batch.size_in_bytes
    while True:
        try:
            batch.add_message(ServiceBusMessage(b"z" * padding))
            return
        except MessageSizeExceededError:
            padding -= 1


def test_batch_the_sdk_counts_as_fitting_is_accepted(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a batch the SDK filled to its limit, whose first message has a MessageId (the
    # SDK copies it onto the batch envelope, 20 + len(id) bytes it does not count)
    with queue_sender(client) as sender:
        batch = sender.create_message_batch()
        _fill_to_the_limit(batch, message_id="watch-0123456789")
        assert batch.max_size_in_bytes - 20 < batch.size_in_bytes <= batch.max_size_in_bytes
        # when it is sent, then the emulator takes it, as it takes every batch the SDK builds
        sender.send_messages(batch)
    assert emulator.sent_count(QUEUE) == 2
    assert emulator.peek_all(QUEUE)[0].message_id == "watch-0123456789"


def test_batch_over_the_limit_by_the_sdks_count_is_refused(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a batch built past the link's limit (a batch object sized by hand: the SDK
    # sizes the ones it creates from the link, and would refuse the second message)
    with queue_sender(client) as sender:
        batch = ServiceBusMessageBatch(max_size_in_bytes=2 * 256 * 1024)
        batch.add_message(ServiceBusMessage(b"x" * (200 * 1024), message_id="big-1"))
        batch.add_message(ServiceBusMessage(b"y" * (100 * 1024)))
        # when it is sent, then the emulator refuses it whole
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(batch)
    assert emulator.sent_count(QUEUE) == 0


def test_receive_and_delete_removes_on_delivery(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given two messages
    with queue_sender(client) as sender:
        sender.send_messages([ServiceBusMessage(b"1"), ServiceBusMessage(b"2")])
    # when they are received in ReceiveAndDelete mode
    with queue_receiver(client, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        got = receive_exactly(receiver, 2)
        # then they are gone from the queue without any settlement
        assert emulator.active_count(QUEUE) == 0
        receive_nothing(receiver)
    assert sorted(str(m) for m in got) == ["1", "2"]
    assert all(m.lock_token is None for m in got)


def test_peek_browses_without_locking(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given three messages, one of them locked by a receiver
    with queue_sender(client) as sender:
        sender.send_messages([ServiceBusMessage(f"p{i}") for i in range(3)])
    with client.get_queue_receiver(QUEUE) as receiver:
        (locked,) = receive_exactly(receiver, 1)
        # when the queue is peeked from the start
        peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
        # then all three are listed in order, nothing new is locked
        assert [str(m) for m in peeked] == ["p0", "p1", "p2"]
        assert [m.sequence_number for m in peeked] == [1, 2, 3]
        assert emulator.locked_count(QUEUE) == 1
        # and peeking past the end returns nothing
        assert receiver.peek_messages(max_message_count=5, sequence_number=100) == []
        receiver.complete_message(locked)


def test_inspection_reports_state_of_stored_messages(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given one plain and one scheduled message
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"now", message_id="a"))
        sender.schedule_messages(ServiceBusMessage(b"later", message_id="b"), later)
    # when the emulator is inspected, then it shows both with their states
    views = emulator.peek_all(QUEUE)
    assert [(v.text, v.state) for v in views] == [
        ("now", MessageState.ACTIVE),
        ("later", MessageState.SCHEDULED),
    ]
    assert views[1].scheduled_enqueue_time is not None
    assert abs((views[1].scheduled_enqueue_time - later).total_seconds()) < 0.01
    assert views[1].enqueued_time is None
    assert (emulator.active_count(QUEUE), emulator.scheduled_count(QUEUE)) == (1, 1)
