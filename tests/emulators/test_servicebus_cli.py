"""``python -m emulators.servicebus``: the standalone emulator a developer runs by hand."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from .conftest import (
    queue_receiver,
    queue_sender,
    receive_exactly,
    subscription_receiver,
    topic_sender,
)

REPO = Path(__file__).parents[2]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "emulators.servicebus", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    config = tmp_path / "entities.json"
    config.write_text(json.dumps({"queues": {"watches": {"duplicate_detection_window": 60}}}))
    process = _start(
        "--config",
        str(config),
        "--topic",
        "events",
        "--subscription",
        "events/failed:status=Failed",
        "--log-level",  # keep stderr quiet: nothing drains the pipe while tests run
        "WARNING",
    )
    try:
        assert process.stdout is not None
        connection_string = ""
        for line in process.stdout:  # the banner ends with the connection string
            if line.startswith("Connection string: "):
                connection_string = line.removeprefix("Connection string: ").strip()
                break
        assert connection_string, process.stderr.read() if process.stderr else ""
        yield process, connection_string
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_cli_serves_entities_from_file_and_flags_until_sigterm(
    cli: tuple[subprocess.Popen[str], str],
) -> None:
    # given the emulator started from the command line with a file and flags
    process, connection_string = cli
    assert "UseDevelopmentEmulator=true" in connection_string
    # when a client uses the queue from the file and the filtered subscription from flags
    with ServiceBusClient.from_connection_string(connection_string) as client:
        with queue_sender(client) as sender:
            sender.send_messages(ServiceBusMessage(b"from file"))
        with topic_sender(client) as sender:
            sender.send_messages(
                ServiceBusMessage(b"hit", application_properties={"status": "Failed"})
            )
            sender.send_messages(
                ServiceBusMessage(b"miss", application_properties={"status": "Ok"})
            )
        with queue_receiver(client, "watches") as receiver:
            (message,) = receive_exactly(receiver, 1)
            receiver.complete_message(message)
        with subscription_receiver(client, "failed", "events") as receiver:
            (event,) = receive_exactly(receiver, 1)
            receiver.complete_message(event)
    # then both work, and SIGTERM stops it cleanly
    assert (str(message), str(event)) == ("from file", "hit")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_cli_rejects_a_bad_config_with_exit_code_2(tmp_path: Path) -> None:
    # given a config file with a typo in an option name
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"queues": {"watches": {"lock_durration": 30}}}))
    # when the CLI starts with it, then it refuses with a readable error
    process = _start("--config", str(config))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "lock_durration" in stderr
