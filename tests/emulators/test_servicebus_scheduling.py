"""Scheduled messages and duplicate detection through the SDK."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import MessageNotFoundError

from emulators.servicebus import QueueConfig, ServiceBusEmulator

from .conftest import (
    QUEUE,
    TOPIC,
    queue_receiver,
    queue_sender,
    receive_exactly,
    receive_nothing,
    topic_sender,
)


def _in(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


def test_message_with_scheduled_enqueue_time_waits_until_due(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a message sent with scheduled_enqueue_time_utc one minute ahead
    when = _in(60)
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"poll again", scheduled_enqueue_time_utc=when))
    assert (emulator.scheduled_count(QUEUE), emulator.active_count(QUEUE)) == (1, 0)
    with queue_receiver(client) as receiver:
        # then it is not receivable before its time
        receive_nothing(receiver)
        # when the broker's clock reaches it
        emulator.advance_clock(61)
        # then it is receivable, still carrying its schedule
        (message,) = receive_exactly(receiver, 1)
        receiver.complete_message(message)
    assert str(message) == "poll again"
    assert message.scheduled_enqueue_time_utc is not None
    assert abs((message.scheduled_enqueue_time_utc - when).total_seconds()) < 0.01
    assert emulator.scheduled_count(QUEUE) == 0


def test_schedule_messages_returns_sequence_numbers_and_cancel_removes(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given two messages scheduled through the management operation
    with queue_sender(client) as sender:
        numbers = sender.schedule_messages(
            [ServiceBusMessage(b"keep"), ServiceBusMessage(b"cancel me")], _in(30)
        )
        # then the broker answered with their sequence numbers
        assert numbers == [1, 2]
        assert emulator.scheduled_count(QUEUE) == 2
        # when one is cancelled
        sender.cancel_scheduled_messages(numbers[1])
        assert emulator.scheduled_count(QUEUE) == 1
    # then only the other one is delivered once due
    emulator.advance_clock(31)
    with queue_receiver(client) as receiver:
        (message,) = receive_exactly(receiver, 1)
        receiver.complete_message(message)
        receive_nothing(receiver)
    assert (str(message), message.sequence_number) == ("keep", 1)


def test_cancelling_an_unknown_sequence_number_raises_message_not_found(
    emulator: ServiceBusEmulator,
) -> None:
    # given a client that does not retry (the SDK retries message-not-found otherwise)
    with (
        ServiceBusClient.from_connection_string(
            emulator.connection_string, retry_total=0
        ) as client,
        queue_sender(client) as sender,
        # when it cancels a sequence number that was never scheduled, then it is told so
        pytest.raises(MessageNotFoundError),
    ):
        sender.cancel_scheduled_messages(12345)


def test_scheduled_message_becomes_receivable_in_real_time(client: ServiceBusClient) -> None:
    # given a message scheduled 1 s ahead on the wall clock
    when = _in(1.0)
    with queue_sender(client) as sender:
        sender.schedule_messages(ServiceBusMessage(b"soon"), when)
    with queue_receiver(client) as receiver:
        # when a receiver waits for it, then it arrives once due, not before
        (message,) = receive_exactly(receiver, 1, timeout=8)
        assert dt.datetime.now(dt.timezone.utc) >= when
        assert message.enqueued_time_utc is not None
        assert message.enqueued_time_utc >= when - dt.timedelta(milliseconds=1)
        receiver.complete_message(message)


def test_scheduling_to_a_topic_fans_out_when_due(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given an event scheduled on the topic
    with topic_sender(client) as sender:
        sender.schedule_messages(
            ServiceBusMessage(b"later", application_properties={"status": "Failed"}), _in(10)
        )
    assert emulator.scheduled_count(TOPIC) == 1
    assert emulator.active_count("events/subscriptions/all") == 0
    # when it falls due, then each matching subscription gets its copy
    emulator.advance_clock(11)
    assert emulator.active_count("events/subscriptions/all") == 1
    assert emulator.active_count("events/subscriptions/failed") == 1


def test_duplicate_message_id_is_accepted_but_dropped(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a queue with duplicate detection, when the same MessageId is sent twice
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"first", message_id="op-1/attempt-1"))
        sender.send_messages(ServiceBusMessage(b"second", message_id="op-1/attempt-1"))
    # then both sends succeeded but only the first message is in the queue
    assert emulator.sent_count(QUEUE) == 2
    assert emulator.duplicates_dropped(QUEUE) == 1
    assert [m.text for m in emulator.peek_all(QUEUE)] == ["first"]


def test_duplicate_detection_includes_scheduled_messages(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a watch scheduled with a deterministic MessageId
    with queue_sender(client) as sender:
        sender.schedule_messages(ServiceBusMessage(b"attempt 2", message_id="op-1/2"), _in(60))
        # when a redelivered trigger schedules the same attempt again, both ways
        sender.schedule_messages(
            ServiceBusMessage(b"attempt 2 again", message_id="op-1/2"), _in(60)
        )
        sender.send_messages(
            ServiceBusMessage(
                b"attempt 2 plain", message_id="op-1/2", scheduled_enqueue_time_utc=_in(60)
            )
        )
        # and once as an immediate send
        sender.send_messages(ServiceBusMessage(b"attempt 2 now", message_id="op-1/2"))
    # then exactly one message exists: no second polling chain
    assert emulator.duplicates_dropped(QUEUE) == 3
    assert emulator.scheduled_count(QUEUE) == 1
    assert emulator.active_count(QUEUE) == 0
    assert [m.text for m in emulator.peek_all(QUEUE)] == ["attempt 2"]


def test_same_message_id_is_accepted_again_after_the_window(client: ServiceBusClient) -> None:
    # given a queue with a 20 s window (Service Bus's minimum) on its own emulator
    with ServiceBusEmulator(queues={"q": QueueConfig(duplicate_detection_window=20.0)}) as emulator:
        with (
            ServiceBusClient.from_connection_string(emulator.connection_string) as sb,
            queue_sender(sb, "q") as sender,
        ):
            sender.send_messages(ServiceBusMessage(b"one", message_id="id"))
            # when the window passes and the same id is sent again
            emulator.advance_clock(21)
            sender.send_messages(ServiceBusMessage(b"two", message_id="id"))
        # then it is a new message, not a duplicate
        assert [m.text for m in emulator.peek_all("q")] == ["one", "two"]
        assert emulator.duplicates_dropped("q") == 0


def test_without_a_window_duplicates_are_kept(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a queue without duplicate detection (the Service Bus default)
    with queue_sender(client, "plain") as sender:
        # when one MessageId is sent twice, then both are enqueued
        sender.send_messages(
            [ServiceBusMessage(b"a", message_id="x"), ServiceBusMessage(b"b", message_id="x")]
        )
    assert emulator.active_count("plain") == 2


def test_topic_duplicate_detection_drops_a_second_event(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a topic with duplicate detection
    with topic_sender(client) as sender:
        # when the same terminal event is published twice
        for _ in range(2):
            sender.send_messages(
                ServiceBusMessage(
                    b"done", message_id="op-1/terminal", application_properties={"status": "Failed"}
                )
            )
    # then subscribers see it once
    assert emulator.duplicates_dropped(TOPIC) == 1
    assert emulator.active_count("events/subscriptions/all") == 1
    assert emulator.active_count("events/subscriptions/failed") == 1
