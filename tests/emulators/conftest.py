"""Fixtures for the Service Bus emulator tests: a running emulator and real SDK clients.

Every test that talks to the emulator does so through the unmodified azure-servicebus
SDK (sync or ``azure.servicebus.aio``); the emulator's inspection API is only used to
assert on broker state.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any, TypeVar, cast

import pytest
from azure.core.credentials import AccessToken
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusReceivedMessage,
    ServiceBusReceiver,
    ServiceBusSender,
)

from emulators.servicebus import (
    QueueConfig,
    ServiceBusEmulator,
    SubscriptionConfig,
    TopicConfig,
)

_T = TypeVar("_T")

QUEUE = "watches"
TOPIC = "events"


@pytest.fixture
def collect_garbage_after() -> Iterator[None]:
    """Run a full garbage collection when the test is done (torn down last)."""
    yield
    gc.collect()


def sdk_leaks_sockets_on_reconnect(test: _T) -> _T:
    """For tests that drop connections: azure-servicebus 7.15 reconnects without closing
    the socket of the connection it lost, and Python warns when that socket is collected
    ("ResourceWarning: unclosed <socket.socket ...>", an error under filterwarnings=error).
    The leak is the SDK's, not the emulator's. Only that warning is ignored, only in these
    tests, and garbage is collected before the test ends so the warning cannot surface in
    a later test (or at interpreter exit)."""
    ignore_leak = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
    collect = pytest.mark.usefixtures("collect_garbage_after")
    return cast(_T, collect(ignore_leak(test)))


#: Short retry backoff so tests that provoke retries stay fast (SDK default is 0.8 s).
FAST_RETRY: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.01}


class StaticTokenCredential:
    """The smallest azure.core ``TokenCredential``: one fixed token, scopes recorded."""

    def __init__(self, token: str = "static-test-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def default_entities() -> dict[str, Any]:
    return {
        "queues": {
            QUEUE: QueueConfig(
                max_delivery_count=3, lock_duration=30.0, duplicate_detection_window=600.0
            ),
            "plain": QueueConfig(),  # dedupe off, Service Bus defaults
        },
        "topics": {
            TOPIC: TopicConfig(
                duplicate_detection_window=600.0,
                subscriptions={
                    "all": SubscriptionConfig(),
                    "failed": SubscriptionConfig(filter={"status": "Failed"}),
                    "failed-westus": SubscriptionConfig(
                        filter={"status": "Failed", "location": "westus"}
                    ),
                    "by-subject": SubscriptionConfig(filter={"sys.subject": "OperationFailed"}),
                    "by-correlation": SubscriptionConfig(filter={"sys.correlation_id": "op-42"}),
                    "by-content-type": SubscriptionConfig(
                        filter={"sys.content_type": "application/cloudevents+json"}
                    ),
                    "by-message-id": SubscriptionConfig(filter={"sys.message_id": "evt-1"}),
                },
            )
        },
    }


@pytest.fixture
def emulator() -> Iterator[ServiceBusEmulator]:
    with ServiceBusEmulator(**default_entities()) as emu:
        yield emu


@pytest.fixture
def client(emulator: ServiceBusEmulator) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(emulator.connection_string, **FAST_RETRY) as sb:
        yield sb


def queue_sender(client: ServiceBusClient, name: str = QUEUE) -> ServiceBusSender:
    """A queue sender without the SDK's keep-alive thread: that thread sleeps in 1 s steps
    and ``close()`` joins it, which would add ~0.5 s to every test that sends."""
    return client.get_queue_sender(name, keep_alive=None)


def topic_sender(client: ServiceBusClient, name: str = TOPIC) -> ServiceBusSender:
    """A topic sender without the keep-alive thread (see ``queue_sender``)."""
    return client.get_topic_sender(name, keep_alive=None)


_QUICK_RECEIVER: dict[str, Any] = {"prefetch_count": 1, "keep_alive": None, "socket_timeout": 0.05}


def queue_receiver(
    client: ServiceBusClient, name: str = QUEUE, **kwargs: Any
) -> ServiceBusReceiver:
    """A receiver that closes at once. With the default prefetch of 0 the SDK always
    starts a keep-alive thread that sleeps in 1 s steps and ``close()`` joins it (~0.5 s
    per receiver); with prefetch 1, ``keep_alive=None`` is honoured. Closing also drains
    the link for two idle socket reads, hence the short (loopback) socket timeout. The
    price: the broker may lock one message ahead (released again on close), so tests that
    count locks or test the SDK's defaults use ``client.get_queue_receiver`` directly."""
    options: dict[str, Any] = {**_QUICK_RECEIVER, **kwargs}
    return client.get_queue_receiver(name, **options)


def subscription_receiver(
    client: ServiceBusClient, subscription: str, topic: str = TOPIC, **kwargs: Any
) -> ServiceBusReceiver:
    """A subscription receiver that closes at once (see ``queue_receiver``)."""
    options: dict[str, Any] = {**_QUICK_RECEIVER, **kwargs}
    return client.get_subscription_receiver(topic, subscription, **options)


def receive_exactly(
    receiver: ServiceBusReceiver, count: int, timeout: float = 5.0
) -> list[ServiceBusReceivedMessage]:
    """Receive until ``count`` messages arrived (or fail after ``timeout`` seconds)."""
    got: list[ServiceBusReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        # The whole remaining budget: the SDK counts (re)opening its link against it, and
        # returns as soon as the requested messages are in.
        wait = max(0.05, deadline - time.monotonic())
        got.extend(
            receiver.receive_messages(max_message_count=count - len(got), max_wait_time=wait)
        )
    assert len(got) == count, f"wanted {count} messages, got {len(got)}"
    return got


def receive_nothing(receiver: ServiceBusReceiver, wait: float = 0.25) -> None:
    """Assert nothing is receivable right now."""
    got = receiver.receive_messages(max_message_count=1, max_wait_time=wait)
    assert got == [], f"expected no message, got {[str(m) for m in got]}"
