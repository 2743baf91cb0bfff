"""``python -m ops_status worker`` exits with the README's codes: 0 when stopped by
SIGTERM or SIGINT (after finishing in-flight work), 5 when a queue could never be read
(Service Bus error), 64 for bad settings (``test_startup.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.stack import LocalStack
from ops_status.cli.output import EXIT_ERROR, EXIT_OK

ROOT = Path(__file__).parents[2]


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack() as local:
        yield local


def run_worker_until(stack: LocalStack, marker: str, sig: int, **settings: str) -> tuple[int, str]:
    """Start the worker on ``stack``, send ``sig`` once its log shows ``marker``."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPS_STATUS_", "ServiceBusConnection", "AZURE_", "IDENTITY_", "MSI_"))
    }
    environment.update(stack.environment(identity_based=False, **settings))
    with subprocess.Popen(
        [sys.executable, "-m", "ops_status", "worker", "--concurrency", "2"],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        assert worker.stderr is not None
        log = []
        for line in worker.stderr:
            log.append(line)
            if marker in line:
                worker.send_signal(sig)
        return worker.wait(timeout=60), "".join(log)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_worker_gracefully_with_exit_code_0(
    stack: LocalStack, sig: signal.Signals
) -> None:
    code, log = run_worker_until(stack, "worker.started", sig)

    assert code == EXIT_OK, log
    assert f"worker.stopping signal={sig.name}" in log
    assert "worker.stopped completed=0 abandoned=0" in log
    assert "Traceback" not in log


def test_a_queue_that_could_never_be_read_ends_the_worker_with_exit_code_5(
    stack: LocalStack,
) -> None:
    # Given a polls queue that does not exist in the namespace
    code, log = run_worker_until(
        stack, "worker.waiting_for_service_bus", signal.SIGTERM, OPS_STATUS_POLLS_QUEUE="missing"
    )

    assert "queue=missing error=MessagingEntityNotFoundError" in log
    assert "unreadable=missing" in log
    assert code == EXIT_ERROR, log
