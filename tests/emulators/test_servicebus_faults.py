"""Fault injection seen through the SDK: refused sends, dropped connections, stopping."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusConnectionError, ServiceBusError

from emulators.servicebus import QueueConfig, ServiceBusEmulator

from .conftest import (
    FAST_RETRY,
    QUEUE,
    TOPIC,
    queue_receiver,
    queue_sender,
    receive_exactly,
    sdk_leaks_sockets_on_reconnect,
    topic_sender,
)


def test_refused_send_is_retried_by_the_sdk_and_then_succeeds(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given the next send to the queue will be refused once
    emulator.refuse_sends(QUEUE, count=1)
    # when the SDK (retry_total=2) sends
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"eventually"))
    # then its retry delivered the message exactly once
    assert emulator.refused_count(QUEUE) == 1
    assert [m.text for m in emulator.peek_all(QUEUE)] == ["eventually"]


def test_persistently_refused_send_raises_service_bus_error(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given sends to the topic are refused more often than the SDK retries
    emulator.refuse_sends(TOPIC, count=10)
    # when an event is published, then the SDK gives up with a ServiceBusError
    with topic_sender(client) as sender, pytest.raises(ServiceBusError):
        sender.send_messages(ServiceBusMessage(b"lost"))
    # and every attempt (1 + retry_total) was refused, nothing enqueued
    assert emulator.refused_count(TOPIC) == 1 + FAST_RETRY["retry_total"]
    assert emulator.active_count("events/subscriptions/all") == 0


def test_refusal_for_a_time_window_covers_scheduling_too(
    emulator: ServiceBusEmulator,
) -> None:
    # given sends to the queue are refused for the next 30 seconds, and a client without retries
    emulator.refuse_sends(QUEUE, for_seconds=30)
    with (
        ServiceBusClient.from_connection_string(
            emulator.connection_string, retry_total=0
        ) as client,
        queue_sender(client) as sender,
    ):
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
        # when a plain send and a schedule request are made, then both fail
        with pytest.raises(ServiceBusError):
            sender.send_messages(ServiceBusMessage(b"x"))
        with pytest.raises(ServiceBusError):
            sender.schedule_messages(ServiceBusMessage(b"y"), later)
        # when the fault is cleared, then sending works again on the same sender
        emulator.refuse_sends(QUEUE, count=0)
        sender.send_messages(ServiceBusMessage(b"z"))
    assert emulator.refused_count(QUEUE) == 2
    assert [m.text for m in emulator.peek_all(QUEUE)] == ["z"]


@sdk_leaks_sockets_on_reconnect
def test_sender_and_receiver_reconnect_after_connections_are_dropped(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given an open sender and receiver that have already exchanged a message
    with queue_sender(client) as sender, queue_receiver(client) as receiver:
        sender.send_messages(ServiceBusMessage(b"before"))
        (before,) = receive_exactly(receiver, 1)
        receiver.complete_message(before)
        opened = emulator.connections_opened

        # when the emulator drops every connection without an AMQP close
        assert emulator.drop_connections() == 2
        assert emulator.wait_until(lambda: emulator.connections_active == 0)

        # then the same sender and receiver carry on over new connections
        sender.send_messages(ServiceBusMessage(b"after"))
        (after,) = receive_exactly(receiver, 1, timeout=10)
        receiver.complete_message(after)
    assert str(after) == "after"
    assert emulator.connections_opened >= opened + 2
    assert emulator.active_count(QUEUE) == 0


@sdk_leaks_sockets_on_reconnect
def test_message_locked_when_the_connection_drops_can_still_be_completed(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a message locked by a receiver whose connection is then dropped
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"in flight"))
    with queue_receiver(client) as receiver:
        (message,) = receive_exactly(receiver, 1)
        emulator.drop_connections()
        # when the application completes it (the SDK falls back to the management link,
        # settling by lock token, since locks outlive the link on Service Bus)
        receiver.complete_message(message)
    # then the message is gone for good
    assert emulator.active_count(QUEUE) == 0


@sdk_leaks_sockets_on_reconnect
def test_unsettled_message_comes_back_after_its_lock_expires_when_the_client_vanishes(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a message locked by a receiver whose connection is dropped and never settles
    with queue_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"orphaned"))
    with queue_receiver(client) as receiver:
        receive_exactly(receiver, 1)
        emulator.drop_connections()
        # then the message stays locked for the lock duration
        time.sleep(0.1)
        assert emulator.locked_count(QUEUE) == 1
        # when the lock expires, then it is delivered again, counted once
        emulator.advance_clock(31)
        (again,) = receive_exactly(receiver, 1, timeout=10)
        assert (str(again), again.delivery_count) == ("orphaned", 1)
        receiver.complete_message(again)


@sdk_leaks_sockets_on_reconnect
def test_connections_dropped_mid_transfer_lose_no_acknowledged_message(
    emulator: ServiceBusEmulator,
) -> None:
    # given a sender streaming multi-frame (200 KB) messages with deterministic ids to a
    # queue with duplicate detection, and a thread dropping every connection now and then
    # (less often than the SDK needs to reconnect, ~0.5 s, so sends can make progress)
    stop = threading.Event()
    drops: list[int] = []

    def dropper() -> None:
        while not stop.wait(0.7):
            drops.append(emulator.drop_connections())

    acknowledged: list[str] = []
    failed: list[str] = []
    with (
        ServiceBusClient.from_connection_string(
            emulator.connection_string, retry_total=5, retry_backoff_factor=0.02
        ) as client,
        queue_sender(client) as sender,
    ):
        sender.send_messages(ServiceBusMessage(b"warm-up", message_id="warm-up"))
        acknowledged.append("warm-up")
        chaos = threading.Thread(target=dropper)
        chaos.start()
        try:
            # when it keeps sending for a few seconds while connections vanish under it
            deadline = time.monotonic() + 3.0
            i = 0
            while time.monotonic() < deadline:
                message_id = f"big-{i}"
                i += 1
                try:
                    sender.send_messages(ServiceBusMessage(b"x" * 200_000, message_id=message_id))
                    acknowledged.append(message_id)
                except ServiceBusError:
                    failed.append(message_id)
        finally:
            stop.set()
            chaos.join()

    # then connections really were dropped, every acknowledged message is stored once,
    # and nothing is stored twice (retries of a send whose outcome was lost are deduped)
    assert sum(drops) > 0
    assert len(acknowledged) > 3  # the warm-up and a few big ones, even on a busy machine
    stored = [m.message_id for m in emulator.peek_all(QUEUE)]
    assert len(stored) == len(set(stored))
    assert set(acknowledged) <= set(stored)
    assert set(stored) <= set(acknowledged) | set(failed)
    # and the emulator still serves a fresh client normally
    with (
        ServiceBusClient.from_connection_string(emulator.connection_string) as client,
        queue_sender(client) as sender,
    ):
        sender.send_messages(ServiceBusMessage(b"healthy"))
    assert emulator.peek_all(QUEUE)[-1].text == "healthy"


def test_graceful_close_is_survived_and_locks_settle_through_management(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a sender, and a receiver holding a locked message
    with queue_sender(client) as sender, queue_receiver(client) as receiver:
        sender.send_messages(ServiceBusMessage(b"held"))
        (held,) = receive_exactly(receiver, 1)
        # when the emulator closes every connection with amqp:connection:forced (as Service
        # Bus does when it recycles one); no socket-leak filter: the SDK closes its sockets
        assert emulator.drop_connections(graceful=True) == 2
        # then the held message can still be completed (by lock token, over a new
        # connection), and both clients carry on
        receiver.complete_message(held)
        sender.send_messages(ServiceBusMessage(b"after"))
        (after,) = receive_exactly(receiver, 1, timeout=10)
        receiver.complete_message(after)
    assert str(after) == "after"
    assert emulator.active_count(QUEUE) == 0


def test_stopping_the_emulator_closes_client_connections_cleanly() -> None:
    # given a client with an open sender when the emulator stops
    emulator = ServiceBusEmulator(queues={"q": QueueConfig()}).start()
    with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        sender = queue_sender(client, "q")
        sender.send_messages(ServiceBusMessage(b"before"))
        emulator.stop()
        # when the sender is used again, then it fails as a connection error (and the SDK,
        # told by an AMQP close, has closed its socket: no leak to filter here)
        with pytest.raises(ServiceBusConnectionError):
            sender.send_messages(ServiceBusMessage(b"after"))
        sender.close()
    assert not emulator.running
