"""Fixtures for the Service Bus emulator tests: a running emulator and real SDK clients.

Every test that talks to the emulator does so through the unmodified azure-servicebus
SDK (sync or ``azure.servicebus.aio``); the emulator's inspection API is only used to
assert on broker state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver

from emulators.servicebus import (
    QueueConfig,
    ServiceBusEmulator,
    SubscriptionConfig,
    TopicConfig,
)

QUEUE = "watches"
TOPIC = "events"

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


def receive_exactly(
    receiver: ServiceBusReceiver, count: int, timeout: float = 5.0
) -> list[ServiceBusReceivedMessage]:
    """Receive until ``count`` messages arrived (or fail after ``timeout`` seconds)."""
    got: list[ServiceBusReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        wait = max(0.05, min(1.0, deadline - time.monotonic()))
        got.extend(receiver.receive_messages(max_message_count=count - len(got), max_wait_time=wait))
    assert len(got) == count, f"wanted {count} messages, got {len(got)}"
    return got


def receive_nothing(receiver: ServiceBusReceiver, wait: float = 0.3) -> None:
    """Assert nothing is receivable right now."""
    got = receiver.receive_messages(max_message_count=1, max_wait_time=wait)
    assert got == [], f"expected no message, got {[str(m) for m in got]}"
