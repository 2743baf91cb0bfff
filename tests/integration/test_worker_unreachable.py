"""The worker against a Service Bus it cannot reach, through the real azure-servicebus SDK.

The client is built with ``retry_total=0`` so each attempt fails at once (the SDK's own
retries would add seconds per attempt), and the worker's back-off is shortened: what is
counted is the worker's own pacing and reporting.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from azure.servicebus import ServiceBusClient

from emulators.stack import INTAKE_QUEUE, POLLS_QUEUE, LocalStack
from ops_status.bootstrap import build_dependencies
from ops_status.inbound import Queue
from ops_status.settings import Settings
from ops_status.worker import Backoff, Worker
from tests.fakes import RecordingOutputs, ScriptedStatusReader

QUEUES = {Queue.INTAKE: INTAKE_QUEUE, Queue.POLLS: POLLS_QUEUE}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def client_for(port: int) -> ServiceBusClient:
    # The local emulator's connection string shape (its built-in root rule and key).
    return ServiceBusClient.from_connection_string(
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
        retry_total=0,
    )


@contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=worker.run, name="test-worker")
    thread.start()
    try:
        yield thread
    finally:
        worker.stop()
        thread.join(timeout=30)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ops_status.worker" and r.getMessage().startswith(event + " ")
    ]


def make_worker(settings: Settings, port: int, backoff: Backoff, concurrency: int) -> Worker:
    dependencies = build_dependencies(
        settings, status_reader=ScriptedStatusReader([]), outputs=RecordingOutputs()
    )
    return Worker(client_for(port), QUEUES, dependencies, concurrency=concurrency, backoff=backoff)


def fits(backoff: Backoff, seconds: float) -> int:
    """How many back-off waits, in schedule order, fit into ``seconds``."""
    n, spent = 0, 0.0
    while spent + backoff.delay(n + 1) <= seconds:
        n += 1
        spent += backoff.delay(n)
    return n


def test_an_unreachable_namespace_is_said_once_then_paced_by_the_backoff(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker of 8 receivers pointed at a port nobody listens on
    port = closed_port()
    backoff = Backoff(initial=0.05, cap=0.4)
    worker = make_worker(settings, port, backoff, concurrency=8)

    # When it runs until it has reminded three times
    with caplog.at_level(logging.DEBUG, logger="ops_status.worker"), running(worker):
        started = time.monotonic()
        wait_for(lambda: len(lines(caplog, "worker.still_waiting_for_service_bus")) >= 3)
        worker.stop()
    elapsed = time.monotonic() - started

    # Then it said once what it waits for, naming the namespace and a queue
    (first,) = lines(caplog, "worker.waiting_for_service_bus")
    assert f"namespace=127.0.0.1:{port} queue=ops-status-" in first
    assert "error=ServiceBusConnectionError" in first
    # ... reminded no more often than the back-off allows
    reminders = lines(caplog, "worker.still_waiting_for_service_bus")
    assert len(reminders) <= fits(backoff, elapsed)
    # ... while each receiver retried on the back-off's schedule, the other failures at DEBUG
    attempts = worker.stats.receive_errors
    assert attempts <= 8 * (1 + fits(backoff, elapsed))
    assert len(lines(caplog, "worker.receiver_failed")) == attempts - 1 - len(reminders)
    assert set(worker.stats.unreadable_queues) <= {INTAKE_QUEUE, POLLS_QUEUE}
    assert worker.stats.unreadable_queues


def test_the_worker_reads_as_soon_as_the_namespace_comes_up(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker waiting for a namespace that is not up yet
    port = closed_port()
    worker = make_worker(settings, port, Backoff(initial=0.05, cap=0.2), concurrency=2)
    with caplog.at_level(logging.INFO, logger="ops_status.worker"), running(worker):
        wait_for(lambda: bool(lines(caplog, "worker.waiting_for_service_bus")))

        # When the namespace comes up on that port
        with LocalStack(servicebus_port=port):
            wait_for(lambda: len(lines(caplog, "worker.service_bus_reachable")) == 2)
            worker.stop()

    # Then each queue was reported readable again, and neither counts as unreadable
    assert {r.split(" queue=")[1].split(" ")[0] for r in lines(
        caplog, "worker.service_bus_reachable")} == {INTAKE_QUEUE, POLLS_QUEUE}  # fmt: skip
    assert worker.stats.unreadable_queues == []


def test_a_stop_during_a_backoff_wait_ends_the_wait(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker whose receivers back off for an hour after their first failure
    worker = make_worker(settings, closed_port(), Backoff(initial=3600, cap=3600), concurrency=2)
    with caplog.at_level(logging.INFO, logger="ops_status.worker"), running(worker) as thread:
        wait_for(lambda: worker.stats.receive_errors == 2)

        # When it is asked to stop
        worker.stop()
        thread.join(timeout=30)

        # Then run() returned without sitting out the hour
        assert not thread.is_alive()
    (stopped,) = lines(caplog, "worker.stopped")
    assert "unreadable=ops-status-intake,ops-status-polls" in stopped
