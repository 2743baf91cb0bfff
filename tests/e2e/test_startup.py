"""Start-up with a missing or malformed setting: both hosts stop at once, naming it.

For each case the function app (``import function_app``, as the Functions host does) and
the standalone worker (``python -m ops_status worker``) are started as real processes
with exactly that environment. Both must exit non-zero (the worker with the CLI's usage
code 64) and say, in their last line, which setting is wrong: the function app through the
``ConfigurationError`` that stops the import, the worker as ``ops-status: error: <SETTING>: ...``.
One process per test, started by the test itself: a module-scoped fixture that started
them all would run again on every xdist worker that draws a test from this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops_status.cli.output import EXIT_USAGE
from ops_status.settings import (
    ARM_ENDPOINT,
    AUTH_FAILURE_GRACE,
    CLIENT_ID,
    CREDENTIAL,
    DEFAULT_TIMEOUT,
    EVENTS_TOPIC,
    HTTP_READ_TIMEOUT,
    INTAKE_QUEUE,
    MAX_TRANSIENT_FAILURES,
    POLL_JITTER,
    POLL_MAX_DELAY,
    POLL_MIN_DELAY,
    POLLS_QUEUE,
    REQUIRED_SETTINGS,
    SERVICE_BUS_CLIENT_ID,
    SERVICE_BUS_CONNECTION,
    SERVICE_BUS_NAMESPACE,
)
from tests.conftest import BASE_ENVIRONMENT

ROOT = Path(__file__).parents[2]

# (setting the error must name, environment changes; None removes the variable)
CASES: list[tuple[str, dict[str, str | None]]] = [
    *((name, {name: None}) for name in REQUIRED_SETTINGS),
    (INTAKE_QUEUE, {INTAKE_QUEUE: "   "}),
    (INTAKE_QUEUE, {INTAKE_QUEUE: "bad name!"}),
    (POLLS_QUEUE, {POLLS_QUEUE: "intake"}),
    (EVENTS_TOPIC, {EVENTS_TOPIC: "-events"}),
    (SERVICE_BUS_CONNECTION, {SERVICE_BUS_NAMESPACE: None, SERVICE_BUS_CONNECTION: "garbage"}),
    (ARM_ENDPOINT, {ARM_ENDPOINT: "ftp://management.azure.com"}),
    (ARM_ENDPOINT, {ARM_ENDPOINT: "http://management.azure.com"}),
    (ARM_ENDPOINT, {ARM_ENDPOINT: "https://user:pw@management.azure.com"}),
    (ARM_ENDPOINT, {ARM_ENDPOINT: "https://management.azure.com/evil"}),
    (CREDENTIAL, {CREDENTIAL: "password"}),
    (CLIENT_ID, {CLIENT_ID: "a", SERVICE_BUS_CLIENT_ID: "b"}),
    (POLL_MIN_DELAY, {POLL_MIN_DELAY: "soon"}),
    (POLL_MIN_DELAY, {POLL_MIN_DELAY: "0"}),
    (POLL_JITTER, {POLL_JITTER: "nan"}),
    (POLL_MAX_DELAY, {POLL_MIN_DELAY: "60", POLL_MAX_DELAY: "10"}),
    (DEFAULT_TIMEOUT, {DEFAULT_TIMEOUT: "90000", "OPS_STATUS_MAX_TIMEOUT": "3600"}),
    (AUTH_FAILURE_GRACE, {AUTH_FAILURE_GRACE: "-1"}),
    (MAX_TRANSIENT_FAILURES, {MAX_TRANSIENT_FAILURES: "1e9"}),
    (HTTP_READ_TIMEOUT, {HTTP_READ_TIMEOUT: "inf"}),
]


def environment(changes: dict[str, str | None]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPS_STATUS_", "ServiceBusConnection", "AZURE_", "IDENTITY_", "MSI_"))
    }
    env.update(BASE_ENVIRONMENT)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(kind: str, changes: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-c", "import function_app"]
        if kind == "function_app"
        else [sys.executable, "-m", "ops_status", "worker"]
    )
    return subprocess.run(
        command,
        env=environment(changes),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def case_id(case: tuple[str, dict[str, str | None]]) -> str:
    setting, changes = case
    return f"{setting}=" + ",".join(f"{k}={v!r}" for k, v in changes.items())


@pytest.mark.parametrize("case", range(len(CASES)), ids=[case_id(c) for c in CASES])
def test_function_app_refuses_to_load_naming_the_setting(case: int) -> None:
    setting, changes = CASES[case]
    process = run("function_app", changes)

    assert process.returncode != 0
    line = last_line(process.stderr)
    exception, _, message = line.partition(": ")
    assert exception.endswith("ConfigurationError"), process.stderr[-2000:]
    assert message.startswith(f"{setting}: "), line


@pytest.mark.parametrize("case", range(len(CASES)), ids=[case_id(c) for c in CASES])
def test_worker_exits_with_the_usage_code_naming_the_setting(case: int) -> None:
    setting, changes = CASES[case]
    process = run("worker", changes)

    assert process.returncode == EXIT_USAGE, process.stderr[-2000:]
    line = last_line(process.stderr)
    assert line.startswith(f"ops-status: error: {setting}: "), line
    assert "Traceback" not in process.stderr
    assert process.stdout == ""


def test_a_valid_environment_gets_past_settings_in_both_hosts() -> None:
    # The control case: the same harness with nothing wrong. The function app imports;
    # the worker would start (so it is not run here: it would wait for a namespace).
    process = run("function_app", {})

    assert process.returncode == 0, process.stderr[-2000:]
