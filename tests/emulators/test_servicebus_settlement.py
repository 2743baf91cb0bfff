"""PeekLock through the SDK: complete, abandon, defer, dead-letter, locks, delivery counts."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError

from emulators.servicebus import QueueConfig, ServiceBusEmulator

from .conftest import (
    QUEUE,
    queue_receiver,
    queue_sender,
    receive_exactly,
    receive_nothing,
    subscription_receiver,
    topic_sender,
)


def _send(client: ServiceBusClient, *bodies: str, queue: str = QUEUE) -> None:
    with queue_sender(client, queue) as sender:
        sender.send_messages([ServiceBusMessage(body) for body in bodies])


def test_complete_removes_the_message(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a locked message
    _send(client, "done")
    with queue_receiver(client) as receiver:
        (message,) = receive_exactly(receiver, 1)
        assert emulator.locked_count(QUEUE) == 1
        # when it is completed (7.15 waits for the broker's settled echo)
        receiver.complete_message(message)
        # then the queue is empty
        assert emulator.active_count(QUEUE) == 0
        receive_nothing(receiver)


def test_abandon_redelivers_with_delivery_count_plus_one(client: ServiceBusClient) -> None:
    # given a received message
    _send(client, "retry me")
    with queue_receiver(client) as receiver:
        (first,) = receive_exactly(receiver, 1)
        # when it is abandoned
        receiver.abandon_message(first)
        # then it comes straight back, its delivery count one higher, under a new lock
        (second,) = receive_exactly(receiver, 1)
        assert str(second) == "retry me"
        assert (first.delivery_count, second.delivery_count) == (0, 1)
        assert second.sequence_number == first.sequence_number
        receiver.complete_message(second)


def test_max_delivery_count_moves_the_message_to_the_dead_letter_queue(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a queue with MaxDeliveryCount 3 and a message that keeps failing
    _send(client, "poison")
    with queue_receiver(client) as receiver:
        for expected_count in range(3):
            (message,) = receive_exactly(receiver, 1)
            assert message.delivery_count == expected_count
            receiver.abandon_message(message)
        # when it has failed MaxDeliveryCount times, then it is no longer receivable
        receive_nothing(receiver)

    # and it sits in the dead-letter queue with Service Bus's reason, readable by the SDK
    assert emulator.dead_letter_count(QUEUE) == 1
    assert emulator.dead_letters(QUEUE)[0].dead_letter_reason == "MaxDeliveryCountExceeded"
    with queue_receiver(client, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        (dead,) = receive_exactly(dlq, 1)
        assert str(dead) == "poison"
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.dead_letter_error_description == (
            "Message could not be consumed after 3 delivery attempts."
        )
        dlq.complete_message(dead)
    assert emulator.dead_letter_count(QUEUE) == 0


def test_dead_letter_keeps_reason_and_description(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a received message
    _send(client, "bad input")
    with queue_receiver(client) as receiver:
        (message,) = receive_exactly(receiver, 1)
        # when the receiver dead-letters it with a reason and description
        receiver.dead_letter_message(
            message, reason="InvalidWatchRequest", error_description="missing operationId"
        )
    # then the broker moved it, with both texts, and the SDK reads them back
    (view,) = emulator.dead_letters(QUEUE)
    assert (view.dead_letter_reason, view.dead_letter_error_description) == (
        "InvalidWatchRequest",
        "missing operationId",
    )
    assert emulator.active_count(QUEUE) == 0
    with queue_receiver(client, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        (dead,) = receive_exactly(dlq, 1)
        assert (dead.dead_letter_reason, dead.dead_letter_error_description) == (
            "InvalidWatchRequest",
            "missing operationId",
        )
        dlq.complete_message(dead)


def test_subscription_dead_letter_queue_is_readable(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given an event on a topic, dead-lettered by a subscriber
    with topic_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"event", application_properties={"status": "x"}))
    with subscription_receiver(client, "all") as receiver:
        (message,) = receive_exactly(receiver, 1)
        receiver.dead_letter_message(message, reason="Unprocessable")
    # when the subscription's dead-letter queue is read through the SDK
    with subscription_receiver(client, "all", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        (dead,) = receive_exactly(dlq, 1)
        dlq.complete_message(dead)
    # then the event is there with its reason, and only that subscription was affected
    assert (str(dead), dead.dead_letter_reason) == ("event", "Unprocessable")
    assert emulator.dead_letter_count("events/subscriptions/all") == 0
    assert emulator.active_count("events/subscriptions/all") == 0


def test_defer_then_receive_deferred_by_sequence_number(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given two messages the receiver defers
    _send(client, "later please", "later, or never")
    with queue_receiver(client) as receiver:
        first, second = receive_exactly(receiver, 2)
        receiver.defer_message(first)
        receiver.defer_message(second)
        # then they are no longer delivered normally
        assert emulator.deferred_count(QUEUE) == 2
        receive_nothing(receiver)
        # when they are fetched by sequence number, then they come back locked
        numbers = [first.sequence_number, second.sequence_number]
        assert None not in numbers
        deferred = receiver.receive_deferred_messages([n for n in numbers if n is not None])
        assert [str(m) for m in deferred] == ["later please", "later, or never"]
        assert all(m.lock_token is not None for m in deferred)
        # and settle through the management link: one completed, one dead-lettered
        receiver.complete_message(deferred[0])
        receiver.dead_letter_message(deferred[1], reason="Gave up", error_description="twice")
    assert (emulator.active_count(QUEUE), emulator.deferred_count(QUEUE)) == (0, 0)
    (dead,) = emulator.dead_letters(QUEUE)
    assert (dead.text, dead.dead_letter_reason, dead.dead_letter_error_description) == (
        "later, or never",
        "Gave up",
        "twice",
    )


def test_renew_lock_extends_the_lock(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a locked message (lock duration 30 s)
    _send(client, "long work")
    with queue_receiver(client) as receiver:
        (message,) = receive_exactly(receiver, 1)
        before = message.locked_until_utc
        assert before is not None
        # when 20 s pass on the broker and the lock is renewed
        emulator.advance_clock(20)
        renewed = receiver.renew_message_lock(message)
        # then the new expiry is a full lock duration later, and the lock survives
        # what would have been the old expiry
        assert renewed - before >= dt.timedelta(seconds=19)
        emulator.advance_clock(15)
        receiver.complete_message(message)
    assert emulator.active_count(QUEUE) == 0


def test_expired_lock_returns_the_message_and_loses_the_old_lock(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a locked message
    _send(client, "slow consumer")
    with queue_receiver(client) as receiver:
        (first,) = receive_exactly(receiver, 1)
        # when its lock duration passes without settlement
        emulator.advance_clock(31)
        # then it is delivered again with delivery count + 1
        (again,) = receive_exactly(receiver, 1)
        assert (str(again), again.delivery_count) == ("slow consumer", 1)
        # and settling with the expired lock fails the way Service Bus fails it
        with pytest.raises(MessageLockLostError):
            receiver.complete_message(first)
        receiver.complete_message(again)


def test_lock_expires_in_real_time_too() -> None:
    # given a queue with a half-second lock and no virtual time
    with ServiceBusEmulator(queues={"q": QueueConfig(lock_duration=0.5)}) as emulator:
        with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
            _send(client, "tick", queue="q")
            with queue_receiver(client, "q") as receiver:
                (first,) = receive_exactly(receiver, 1)
                first_lock_expiry = first.locked_until_utc
                assert first_lock_expiry is not None
                # when the lock runs out on the wall clock
                (again,) = receive_exactly(receiver, 1, timeout=5)
                # then the message is redelivered, but not before the first lock expired
                assert dt.datetime.now(dt.timezone.utc) >= first_lock_expiry
                assert again.delivery_count == 1
                receiver.complete_message(again)
        assert first.sequence_number == again.sequence_number


def test_closing_a_receiver_releases_its_prefetched_messages_without_counting(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given three messages and a prefetching receiver that takes only one of them
    _send(client, "taken", "buffered-1", "buffered-2")
    with queue_receiver(client, prefetch_count=10) as receiver:
        (taken,) = receive_exactly(receiver, 1)
        assert emulator.wait_until(lambda: emulator.locked_count(QUEUE) == 3)
    # when the receiver closes, the SDK drains and releases what it buffered
    assert emulator.wait_until(lambda: emulator.locked_count(QUEUE) == 1, timeout=3)
    # then the released messages are available again, not counted as failed deliveries,
    # while the one handed to the application stays locked until its lock expires
    with queue_receiver(client) as receiver:
        again = receive_exactly(receiver, 2)
        assert sorted((str(m), m.delivery_count) for m in again) == [
            ("buffered-1", 0),
            ("buffered-2", 0),
        ]
        for message in again:
            receiver.complete_message(message)
    assert str(taken) == "taken"
    assert emulator.locked_count(QUEUE) == 1
