"""Browsing (peek) through the SDK, as Service Bus does it ("Message browsing",
https://learn.microsoft.com/azure/service-bus-messaging/message-browsing): on a queue,
peek returns active, locked, deferred and scheduled messages in sequence order, with
their state and scheduled enqueue time, and locks, settles and counts nothing; on a
subscription it returns no scheduled messages (they are still the topic's)."""

from __future__ import annotations

import datetime as dt

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageState

from emulators.servicebus import ServiceBusEmulator

from .conftest import (
    QUEUE,
    queue_receiver,
    queue_sender,
    receive_exactly,
    receive_nothing,
    subscription_receiver,
    topic_sender,
)


def _in(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


def _broker_state(emulator: ServiceBusEmulator, entity: str = QUEUE) -> list[tuple[object, ...]]:
    return [
        (v.sequence_number, v.state, v.delivery_count, v.lock_token, v.scheduled_enqueue_time)
        for v in emulator.peek_all(entity)
    ]


def test_peek_on_a_queue_lists_every_kind_of_message_with_its_state_and_schedule(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given an active, a deferred, a locked and two scheduled messages (both ways to schedule)
    in_an_hour, in_two_hours = _in(3600), _in(7200)
    with queue_sender(client) as sender:
        sender.send_messages([ServiceBusMessage(b"active"), ServiceBusMessage(b"deferred")])
        [scheduled_number] = sender.schedule_messages(
            ServiceBusMessage(b"scheduled", message_id="s-1"), in_an_hour
        )
        sender.send_messages(
            ServiceBusMessage(b"annotated", scheduled_enqueue_time_utc=in_two_hours)
        )
        sender.send_messages(ServiceBusMessage(b"locked"))
    with queue_receiver(client) as worker:
        first, second = receive_exactly(worker, 2)
        worker.defer_message(second)
        (locked,) = receive_exactly(worker, 1)
        assert str(locked) == "locked"
        before = _broker_state(emulator)

        # when the queue is browsed from the start
        with queue_receiver(client) as browser:
            peeked = browser.peek_messages(max_message_count=10, sequence_number=1)

        # then all five are listed, in sequence order, each with its state
        assert [(str(m), m.state) for m in peeked] == [
            ("active", ServiceBusMessageState.ACTIVE),
            ("deferred", ServiceBusMessageState.DEFERRED),
            ("scheduled", ServiceBusMessageState.SCHEDULED),
            ("annotated", ServiceBusMessageState.SCHEDULED),
            ("locked", ServiceBusMessageState.ACTIVE),
        ]
        assert [m.sequence_number for m in peeked] == [1, 2, 3, 4, 5]
        assert peeked[2].sequence_number == scheduled_number
        assert peeked[2].message_id == "s-1"
        # the scheduled enqueue time is the one asked for (AMQP timestamps are milliseconds)
        for message, when in ((peeked[2], in_an_hour), (peeked[3], in_two_hours)):
            assert message.scheduled_enqueue_time_utc is not None
            assert abs((message.scheduled_enqueue_time_utc - when).total_seconds()) < 0.002
        assert all(m.enqueued_time_utc is not None for m in peeked)
        # a peek is a snapshot: no lock is shown, not even the one a worker holds
        assert all(m.locked_until_utc is None and m.lock_token is None for m in peeked)
        # delivery counts are the broker's, as they were
        assert [m.delivery_count for m in peeked] == [row[2] for row in before]
        # and nothing on the broker changed: same locks, same delivery counts
        assert _broker_state(emulator) == before
        worker.complete_message(locked)
        worker.complete_message(first)


def test_peek_pages_by_sequence_number_and_ends_with_an_empty_page(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given five scheduled messages
    with queue_sender(client) as sender:
        numbers = sender.schedule_messages([ServiceBusMessage(f"m{i}") for i in range(5)], _in(600))
    with queue_receiver(client) as browser:
        # when it is browsed two at a time, each page after the last number seen
        pages, start = [], 1
        while page := browser.peek_messages(max_message_count=2, sequence_number=start):
            pages.append([m.sequence_number for m in page])
            start = page[-1].sequence_number + 1
        # then every message comes exactly once, in order, and the end is an empty page
        assert pages == [numbers[0:2], numbers[2:4], numbers[4:5]]
        assert browser.peek_messages(max_message_count=2, sequence_number=start) == []


def test_browsing_changes_nothing_scheduled_messages_are_delivered_on_time(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given one message due now and one scheduled for a minute from now
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"due"))
        [later_number] = sender.schedule_messages(ServiceBusMessage(b"later"), _in(60))
    before = _broker_state(emulator)
    # when the queue is browsed twice, by a receiver with the SDK's defaults (as ls does)
    with client.get_queue_receiver(QUEUE) as browser:
        for _ in range(2):
            assert [str(m) for m in browser.peek_messages(max_message_count=10)] == [
                "due",
                "later",
            ]
            browser._last_received_sequenced_number = 0  # browse from the start again
    # then nothing was locked, counted or moved
    assert _broker_state(emulator) == before
    assert (emulator.locked_count(QUEUE), emulator.scheduled_count(QUEUE)) == (0, 1)
    with queue_receiver(client) as worker:
        # and the due message is a first delivery
        (due,) = receive_exactly(worker, 1)
        assert (str(due), due.delivery_count) == ("due", 0)
        worker.complete_message(due)
        # and the scheduled one still waits, then arrives on time, as a first delivery
        receive_nothing(worker)
        emulator.advance_clock(61)
        (later,) = receive_exactly(worker, 1)
        assert (str(later), later.sequence_number, later.delivery_count) == (
            "later",
            later_number,
            0,
        )
        worker.complete_message(later)


def test_peek_on_a_subscription_shows_no_scheduled_messages_until_they_fall_due(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a topic with one event sent now and one scheduled for a minute from now
    with topic_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"now"))
        sender.schedule_messages(ServiceBusMessage(b"later"), _in(60))
    with subscription_receiver(client, "all") as browser:
        # when the subscription is browsed, then only the event already delivered to it shows
        assert [str(m) for m in browser.peek_messages(max_message_count=10)] == ["now"]
        # and once the scheduled one falls due it is the subscription's, and shows, active
        emulator.advance_clock(61)
        [later] = browser.peek_messages(max_message_count=10, sequence_number=2)
        assert (str(later), later.state) == ("later", ServiceBusMessageState.ACTIVE)
