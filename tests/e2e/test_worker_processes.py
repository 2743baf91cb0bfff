"""``python -m ops_status worker --processes 2``: two spawned worker processes on the local
stack handle watches, and stop together, cleanly, on SIGTERM; if the parent is killed,
the children stop too instead of receiving on as orphans."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusMessage

from emulators.arm import Step
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, LocalStack
from ops_status.cli.output import EXIT_OK
from tests.e2e.conftest import E2E, make_e2e

ROOT = Path(__file__).parents[2]
WATCHES = 6


@pytest.fixture
def e2e(monkeypatch: pytest.MonkeyPatch) -> Iterator[E2E]:
    with LocalStack() as stack:
        harness = make_e2e(stack, monkeypatch, identity_based=False)
        yield harness
        harness.client.close()


def start_worker(e2e: E2E) -> subprocess.Popen[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPS_STATUS_", "ServiceBusConnection", "AZURE_", "IDENTITY_", "MSI_"))
    }
    environment.update(e2e.environment)
    return subprocess.Popen(
        [sys.executable, "-m", "ops_status", "worker", "--processes", "2", "--concurrency", "2"],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_handle_watches_and_stop_together_on_sigterm(e2e: E2E) -> None:
    # given watches of operations that have succeeded, waiting on the intake queue
    with e2e.client.get_queue_sender(INTAKE_QUEUE) as sender:
        for n in range(WATCHES):
            e2e.stack.arm.script(f"op-{n}", [Step.succeeded()])
            body = json.dumps(e2e.parts(f"op-{n}", correlationId=f"run-{n}")).encode()
            sender.send_messages(ServiceBusMessage(body, content_type="application/json"))

    # when the worker runs with two processes until every watch has finished
    with start_worker(e2e) as worker:
        assert worker.stderr is not None
        log: list[str] = []
        finished = 0
        for line in worker.stderr:
            log.append(line)
            if "watch.finished" in line:
                finished += 1
                if finished == WATCHES:
                    worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    text = "".join(log)

    # then each watch got its one event, two processes ran and both stopped gracefully
    assert code == EXIT_OK, text
    assert e2e.stack.servicebus.sent_count(EVENTS_TOPIC) == WATCHES
    (started,) = re.findall(r"worker\.processes_started processes=2 pids=(\d+),(\d+)", text)
    pids = set(re.findall(r"worker\.started .* pid=(\d+)", text))
    assert pids == set(started)
    assert text.count("worker.stopping signal=SIGTERM") == 3  # the parent and each child
    stopped = re.findall(r"worker\.stopped completed=(\d+) abandoned=0", text)
    assert len(stopped) == 2
    assert sum(int(n) for n in stopped) == WATCHES
    assert "Traceback" not in text


def test_children_stop_when_the_parent_is_killed(e2e: E2E) -> None:
    # given a worker with two processes, both receiving
    with start_worker(e2e) as worker:
        assert worker.stderr is not None
        log: list[str] = []
        for line in worker.stderr:
            log.append(line)
            if "worker.started" in line and sum("worker.started" in each for each in log) == 2:
                # when the parent dies without a chance to stop them
                worker.send_signal(signal.SIGKILL)
        # then the children notice, stop gracefully and exit: their stderr closes
        worker.wait(timeout=30)
    text = "".join(log)
    assert text.count("worker.parent_exited") == 2, text
    assert len(re.findall(r"worker\.stopped completed=0 abandoned=0", text)) == 2
    assert "Traceback" not in text


def test_a_sigterm_while_the_processes_start_stops_them_cleanly(e2e: E2E) -> None:
    # given a worker whose two processes are still importing and connecting
    with start_worker(e2e) as worker:
        assert worker.stderr is not None
        log: list[str] = []
        for line in worker.stderr:
            log.append(line)
            if "worker.processes_started" in line:
                # when SIGTERM comes at once
                worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    text = "".join(log)

    # then neither is killed mid-start: both run, stop at once and exit 0
    assert code == EXIT_OK, text
    assert len(re.findall(r"worker\.stopped completed=0 abandoned=0", text)) == 2, text
    assert "Traceback" not in text
