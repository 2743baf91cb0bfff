"""Whole flows on the local stack: AMQP Service Bus, ARM and identity, real SDKs throughout.

The worker runs in-process on a thread (``running_worker``) or as a child process
(``tests/e2e/crashing_worker.py``) when a test needs to kill it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, LocalStack
from ops_status.bootstrap import build_dependencies, create_service_bus_client
from ops_status.inbound import Queue
from ops_status.request import parse_watch_request, submission_key
from ops_status.settings import Settings, load_settings
from ops_status.worker import Worker

SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
# Short delays so chains of polls take seconds; the policy code is the production one.
FAST_POLLING = {
    "OPS_STATUS_POLL_MIN_DELAY": "1",
    "OPS_STATUS_POLL_MAX_DELAY": "2",
    "OPS_STATUS_POLL_GROWTH": "0.5",
    "OPS_STATUS_HTTP_READ_TIMEOUT": "2",
    # Deliveries of a message whose send failed are spaced 1 s x delivery count apart.
    "OPS_STATUS_SEND_RETRY_DELAY": "1",
}


@dataclass
class E2E:
    stack: LocalStack
    environment: dict[str, str]
    settings: Settings
    client: ServiceBusClient

    def submit(self, body: dict[str, Any], *, message_id: str | None = None) -> str:
        raw = json.dumps(body).encode()
        if message_id is None:
            message_id = submission_key(
                parse_watch_request(raw, arm_endpoint=self.settings.arm_endpoint)
            )
        with self.client.get_queue_sender(INTAKE_QUEUE) as sender:
            sender.send_messages(
                ServiceBusMessage(raw, message_id=message_id, content_type="application/json")
            )
        return message_id

    def receive_events(
        self, subscription: str = "all", *, expect: int = 1, timeout: float = 30.0
    ) -> list[tuple[dict[str, Any], Any]]:
        """Receive (and complete) events until ``expect`` arrived, then 2 s more for strays."""
        found: list[tuple[dict[str, Any], Any]] = []
        import time

        deadline = time.monotonic() + timeout
        quiet_until: float | None = None
        with self.client.get_subscription_receiver(EVENTS_TOPIC, subscription) as receiver:
            while time.monotonic() < deadline:
                if quiet_until is not None and time.monotonic() > quiet_until:
                    break
                for message in receiver.receive_messages(max_message_count=10, max_wait_time=0.5):
                    found.append((json.loads(b"".join(message.body)), message))
                    receiver.complete_message(message)
                if len(found) >= expect and quiet_until is None:
                    quiet_until = time.monotonic() + 2.0
        return found

    def parts(self, operation_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "subscriptionId": SUBSCRIPTION,
            "location": "westus",
            "operationId": operation_id,
            **extra,
        }


def make_e2e(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, *, identity_based: bool = True
) -> E2E:
    environment = stack.environment(identity_based=identity_based, **FAST_POLLING)
    for name in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in stack.identity.environ().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(environment)
    client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
    return E2E(stack, environment, settings, client)


@pytest.fixture
def e2e(monkeypatch: pytest.MonkeyPatch) -> Iterator[E2E]:
    with LocalStack(lock_duration=3.0, max_delivery_count=3) as stack:
        harness = make_e2e(stack, monkeypatch)
        yield harness
        harness.client.close()


@contextmanager
def running_worker(e2e: E2E, *, concurrency: int = 4) -> Iterator[Worker]:
    """The real worker, wired exactly as ``python -m ops_status worker`` wires it."""
    dependencies = build_dependencies(e2e.settings)
    client = create_service_bus_client(e2e.settings, dependencies.credential)
    queues = {Queue.INTAKE: e2e.settings.intake_queue, Queue.POLLS: e2e.settings.polls_queue}
    worker = Worker(client, queues, dependencies, concurrency=concurrency)
    thread = threading.Thread(target=worker.run, name="e2e-worker")
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        client.close()
        dependencies.outputs.close()  # type: ignore[attr-defined]
