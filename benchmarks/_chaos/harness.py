"""The harness's instruments: the worker as a killable subprocess, the polls-queue
sampler, the event collector on subscription "all", and small helpers over the stack."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.servicebus import MessageState
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack

from .config import (
    ROOT,
    SETTINGS,
)
from .plan import Watch
from .seam import CountingOutputs


class Sampler:
    """Samples the polls queue: scheduled polls per operation, when each was last seen,
    and the sequence numbers each poll MessageId was kept under."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._stop = threading.Event()
        self.most: Counter[str] = Counter()
        # per operation: when the latest scheduled poll was first seen (about when sent)
        self.last_scheduled: dict[str, float] = {}
        self.sequence_numbers: dict[str, set[int]] = defaultdict(set)
        self._seen: set[int] = set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def kept_twice(self) -> int:
        """Poll MessageIds the queue kept under more than one sequence number."""
        return sum(1 for numbers in self.sequence_numbers.values() if len(numbers) > 1)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            counts: Counter[str] = Counter()
            for message in self._stack.servicebus.peek_all(POLLS_QUEUE):
                self.sequence_numbers[str(message.message_id)].add(message.sequence_number)
                if message.state is MessageState.SCHEDULED:
                    operation = _operation_of(message)
                    counts[operation] += 1
                    # Service Bus reports no enqueued time for a scheduled message: the
                    # first sample that sees it bounds its send time (within a period).
                    if message.sequence_number not in self._seen:
                        self._seen.add(message.sequence_number)
                        self.last_scheduled[operation] = time.time()
            for operation, n in counts.items():
                self.most[operation] = max(self.most[operation], n)


def _operation_of(message: Any) -> str:
    operation = (message.application_properties or {}).get("operationId")
    if isinstance(operation, str):
        return operation
    try:
        return str(json.loads(message.body).get("operationId", "?"))
    except (ValueError, AttributeError):
        return "?"


class Worker:
    """The worker as a child process, killable and restartable: ``python -m ops_status
    worker``'s code path (``ops_status.cli``), its output client wrapped in
    ``CountingOutputs`` (``--serve-worker``)."""

    def __init__(
        self, environment: dict[str, str], log_path: Path, concurrency: int, attempts: Path
    ) -> None:
        self._environment = environment
        self._log = log_path.open("ab")
        self._concurrency = concurrency
        self._attempts = attempts
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.chaos",
                "--serve-worker",
                "--attempts",
                str(self._attempts),
                "--concurrency",
                str(self._concurrency),
            ],
            env=self._environment,
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
        )
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, *, graceful: bool = True) -> None:
        if not graceful:
            self.kill()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def serve_worker(attempts: Path, concurrency: int) -> int:
    """The child's side of ``Worker``: the CLI's worker, with counted outputs."""
    from ops_status import cli
    from ops_status.bootstrap import build_dependencies, set_dependencies
    from ops_status.settings import load_settings

    real = build_dependencies(load_settings())
    set_dependencies(dataclasses.replace(real, outputs=CountingOutputs(real.outputs, attempts)))
    # One process: the counted outputs above live in this one (a spawned child would not
    # inherit them).
    return cli.main(["worker", "--concurrency", str(concurrency), "--processes", "1"])


def crash_after_sends(attempts: Path, count: int) -> int:
    """Handle intake messages with the real handler and adapters, never complete them, and
    die like SIGKILL (``os._exit(137)``) once ``count`` of them have sent their follow-up:
    each step's send reached Service Bus, none was completed, so every one is redelivered
    when its lock expires. (tests/e2e/crashing_worker.py does the same for one message.)"""
    import logging

    from ops_status.bootstrap import build_dependencies, create_service_bus_client
    from ops_status.handler import handle_watch_message
    from ops_status.inbound import InboundMessage, Queue
    from ops_status.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("azure", "msal", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    real = build_dependencies(settings)
    dependencies = dataclasses.replace(real, outputs=CountingOutputs(real.outputs, attempts))
    client = create_service_bus_client(settings, real.credential)
    handled = 0
    with client.get_queue_receiver(settings.intake_queue, prefetch_count=0) as receiver:
        while True:
            for message in receiver.receive_messages(max_message_count=1, max_wait_time=1):
                handle_watch_message(InboundMessage.from_sdk(message, Queue.INTAKE), dependencies)
                handled += 1  # its follow-up was sent; it is not completed
                if handled >= count:
                    sys.stderr.flush()
                    os._exit(137)


def worker_environment(stack: LocalStack, **extra: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "IDENTITY_SERVER_THUMBPRINT")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection"))
    }
    environment.update(stack.environment(identity_based=True, **{**SETTINGS, **extra}))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def submit_watches(client: ServiceBusClient, watches: Sequence[Watch]) -> None:
    with client.get_queue_sender(INTAKE_QUEUE) as sender:
        for start in range(0, len(watches), 50):
            sender.send_messages(
                [
                    ServiceBusMessage(
                        w.body, message_id=w.message_id, content_type="application/json"
                    )
                    for w in watches[start : start + 50]
                ]
            )


def dead_letters_of(stack: LocalStack) -> list[Any]:
    return [
        m for queue in (INTAKE_QUEUE, POLLS_QUEUE) for m in stack.servicebus.dead_letters(queue)
    ]


def queues_left(stack: LocalStack) -> int:
    bus = stack.servicebus
    return sum(bus.active_count(q) + bus.scheduled_count(q) for q in (INTAKE_QUEUE, POLLS_QUEUE))


class EventCollector:
    """Receives (and completes) every event on subscription "all", reopening its receiver
    when the emulator drops the connection. A redelivery to *this* receiver (its
    connection dropped before the completion) is recognised by its sequence number."""

    def __init__(self) -> None:
        self.by_watch: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.event_ids: Counter[str] = Counter()
        self._seen: set[int] = set()

    def run(self, client: ServiceBusClient, until: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                with client.get_subscription_receiver(EVENTS_TOPIC, "all") as receiver:
                    while time.monotonic() < deadline:
                        for message in receiver.receive_messages(
                            max_message_count=50, max_wait_time=0.25
                        ):
                            if message.sequence_number not in self._seen:
                                self._seen.add(message.sequence_number)
                                event = json.loads(b"".join(message.body))
                                self.event_ids[event["id"]] += 1
                                key = (event.get("data") or {}).get("correlationId")
                                self.by_watch[key or event["id"]].append(event)
                            receiver.complete_message(message)
                        if until():
                            return
            except (AzureError, OSError):
                time.sleep(0.5)  # our own connection was dropped too: reopen

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_watch.values())

    @property
    def kept_twice(self) -> int:
        return sum(1 for n in self.event_ids.values() if n > 1)
