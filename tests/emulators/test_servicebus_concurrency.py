"""Many clients at once: threads, processes, and the asyncio SDK."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import threading
from collections import Counter

from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient

from emulators.servicebus import ServiceBusEmulator

from .conftest import QUEUE, queue_sender

_SENDER_SCRIPT = """
import sys
from azure.servicebus import ServiceBusClient, ServiceBusMessage
connection_string, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with ServiceBusClient.from_connection_string(connection_string) as client:
    with client.get_queue_sender("watches", keep_alive=None) as sender:
        for i in range(count):
            sender.send_messages(ServiceBusMessage(f"{prefix}-{i}", message_id=f"{prefix}-{i}"))
"""


def test_concurrent_senders_and_competing_receivers_lose_and_duplicate_nothing(
    emulator: ServiceBusEmulator,
) -> None:
    # given three sender threads, each with its own client, reopening its sender twice,
    # and two receiver threads competing on the same queue
    per_round, rounds, senders = 10, 2, 3
    expected = per_round * rounds * senders
    received: list[str] = []
    received_lock = threading.Lock()
    errors: list[Exception] = []
    done_sending = threading.Event()

    def send(worker: int) -> None:
        try:
            with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
                for round_ in range(rounds):
                    with queue_sender(client) as sender:
                        batch = [
                            ServiceBusMessage(
                                f"w{worker}-r{round_}-m{i}", message_id=f"{worker}/{round_}/{i}"
                            )
                            for i in range(per_round // 2)
                        ]
                        sender.send_messages(batch)
                        for i in range(per_round // 2, per_round):
                            sender.send_messages(
                                ServiceBusMessage(
                                    f"w{worker}-r{round_}-m{i}", message_id=f"{worker}/{round_}/{i}"
                                )
                            )
        except Exception as exc:  # noqa: BLE001 - collected here, asserted on below
            errors.append(exc)

    def receive() -> None:
        try:
            with (
                ServiceBusClient.from_connection_string(emulator.connection_string) as client,
                client.get_queue_receiver(QUEUE) as receiver,
            ):
                while True:
                    with received_lock:
                        if len(received) >= expected:
                            return
                    batch = receiver.receive_messages(max_message_count=5, max_wait_time=0.5)
                    if not batch and done_sending.is_set() and emulator.active_count(QUEUE) == 0:
                        return
                    for message in batch:
                        receiver.complete_message(message)
                        with received_lock:
                            received.append(str(message))
        except Exception as exc:  # noqa: BLE001 - collected here, asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(senders)]
    receivers = [threading.Thread(target=receive) for _ in range(2)]
    # when they all run at once
    for thread in [*threads, *receivers]:
        thread.start()
    for thread in threads:
        thread.join(60)
    done_sending.set()
    for thread in receivers:
        thread.join(60)

    # then every message was received exactly once and the queue is empty
    assert errors == []
    assert len(received) == expected
    assert max(Counter(received).values()) == 1
    assert emulator.active_count(QUEUE) == 0
    assert emulator.sent_count(QUEUE) == expected


def test_senders_in_other_processes_reach_the_emulator(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given two separate Python processes using the SDK
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SENDER_SCRIPT, emulator.connection_string, name, "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("proc-a", "proc-b")
    ]
    # when both send five messages at the same time
    outputs = [process.communicate(timeout=60) for process in processes]
    # then both succeeded and all ten messages are in the queue
    assert [process.returncode for process in processes] == [0, 0], outputs
    texts = sorted(m.text for m in emulator.peek_all(QUEUE))
    assert texts == sorted(f"proc-{p}-{i}" for p in "ab" for i in range(5))


def test_async_client_sends_schedules_receives_and_settles(emulator: ServiceBusEmulator) -> None:
    # given the asyncio flavour of the SDK
    async def scenario() -> tuple[list[str], list[int], int | None]:
        async with AsyncServiceBusClient.from_connection_string(emulator.connection_string) as sb:
            async with sb.get_queue_sender(QUEUE) as sender:
                # when it sends a batch and schedules a message
                batch = await sender.create_message_batch()
                batch.add_message(ServiceBusMessage(b"async-1", message_id="a1"))
                batch.add_message(ServiceBusMessage(b"async-2", message_id="a2"))
                await sender.send_messages(batch)
                later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
                numbers = await sender.schedule_messages(ServiceBusMessage(b"async-later"), later)
            async with sb.get_queue_receiver(QUEUE) as receiver:
                got: list[str] = []
                abandoned_count: int | None = None
                while len(got) < 3:
                    for message in await receiver.receive_messages(
                        max_message_count=3, max_wait_time=2
                    ):
                        if str(message) == "async-1" and abandoned_count is None:
                            abandoned_count = message.delivery_count
                            await receiver.abandon_message(message)  # comes back once
                            continue
                        await receiver.renew_message_lock(message)
                        await receiver.complete_message(message)
                        got.append(str(message))
                    if len(got) == 2:
                        emulator.advance_clock(301)  # let the scheduled one fall due
                return got, numbers, abandoned_count

    got, numbers, abandoned_count = asyncio.run(scenario())

    # then the batch, the abandon/redelivery and the schedule all behaved as with sync
    assert sorted(got) == ["async-1", "async-2", "async-later"]
    assert numbers == [3]
    assert abandoned_count == 0
    assert emulator.active_count(QUEUE) == 0
    assert emulator.scheduled_count(QUEUE) == 0
