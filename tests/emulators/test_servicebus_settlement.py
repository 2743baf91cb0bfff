"""PeekLock through the SDK: complete, abandon, defer, dead-letter, locks, delivery counts."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError

from emulators.servicebus import QueueConfig, ServiceBusEmulator

from .conftest import QUEUE, TOPIC, receive_exactly, receive_nothing


def _send(client: ServiceBusClient, *bodies: str, queue: str = QUEUE) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(body) for body in bodies])


def test_complete_removes_the_message(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a locked message
    _send(client, "done")
    with client.get_queue_receiver(QUEUE) as receiver:
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
    with client.get_queue_receiver(QUEUE) as receiver:
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
    with client.get_queue_receiver(QUEUE) as receiver:
        for expected_count in range(3):
            (message,) = receive_exactly(receiver, 1)
            assert message.delivery_count == expected_count
            receiver.abandon_message(message)
        # when it has failed MaxDeliveryCount times, then it is no longer receivable
        receive_nothing(receiver)

    # and it sits in the dead-letter queue with Service Bus's reason, readable by the SDK
    assert emulator.dead_letter_count(QUEUE) == 1
    assert emulator.dead_letters(QUEUE)[0].dead_letter_reason == "MaxDeliveryCountExceeded"
    with client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
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
    with client.get_queue_receiver(QUEUE) as receiver:
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
    with client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
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
    with client.get_topic_sender(TOPIC) as sender:
        sender.send_messages(ServiceBusMessage(b"event", application_properties={"status": "x"}))
    with client.get_subscription_receiver(TOPIC, "all") as receiver:
        (message,) = receive_exactly(receiver, 1)
        receiver.dead_letter_message(message, reason="Unprocessable")
    # when the subscription's dead-letter queue is read through the SDK
    with client.get_subscription_receiver(
        TOPIC, "all", sub_queue=ServiceBusSubQueue.DEAD_LETTER
    ) as dlq:
        (dead,) = receive_exactly(dlq, 1)
        dlq.complete_message(dead)
    # then the event is there with its reason, and only that subscription was affected
    assert (str(dead), dead.dead_letter_reason) == ("event", "Unprocessable")
    assert emulator.dead_letter_count("events/subscriptions/all") == 0
    assert emulator.active_count("events/subscriptions/all") == 0


def test_defer_then_receive_deferred_by_sequence_number(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a message the receiver defers
    _send(client, "later please", "next")
    with client.get_queue_receiver(QUEUE) as receiver:
        first, second = receive_exactly(receiver, 2)
        receiver.defer_message(first)
        receiver.complete_message(second)
        # then it is no longer delivered normally
        assert emulator.deferred_count(QUEUE) == 1
        receive_nothing(receiver)
        # when it is fetched by its sequence number, then it comes back locked and settleable
        (deferred,) = receiver.receive_deferred_messages([first.sequence_number])
        assert str(deferred) == "later please"
        assert deferred.lock_token is not None
        receiver.complete_message(deferred)
    assert emulator.active_count(QUEUE) == 0
    assert emulator.deferred_count(QUEUE) == 0


def test_renew_lock_extends_the_lock(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a locked message (lock duration 30 s)
    _send(client, "long work")
    with client.get_queue_receiver(QUEUE) as receiver:
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
    with client.get_queue_receiver(QUEUE) as receiver:
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
    # given a queue with a one-second lock and no virtual time
    with ServiceBusEmulator(queues={"q": QueueConfig(lock_duration=1.0)}) as emulator:
        with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
            _send(client, "tick", queue="q")
            with client.get_queue_receiver("q") as receiver:
                (first,) = receive_exactly(receiver, 1)
                started = time.monotonic()
                # when the lock runs out on the wall clock
                (again,) = receive_exactly(receiver, 1, timeout=5)
                # then the message is redelivered after about the lock duration
                assert time.monotonic() - started >= 0.8
                assert again.delivery_count == 1
                receiver.complete_message(again)
        assert first.sequence_number == again.sequence_number


def test_closing_a_receiver_releases_its_unsettled_messages_without_counting(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a message delivered to a receiver that then closes without settling
    _send(client, "orphan")
    with client.get_queue_receiver(QUEUE) as receiver:
        receive_exactly(receiver, 1)
    # when the broker sees the SDK's release-on-close, the message is available at once
    assert emulator.wait_until(lambda: emulator.locked_count(QUEUE) == 0, timeout=3)
    with client.get_queue_receiver(QUEUE) as receiver:
        (again,) = receive_exactly(receiver, 1)
        # then it was not counted as a failed delivery
        assert again.delivery_count == 0
        receiver.complete_message(again)
