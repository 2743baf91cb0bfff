"""The playground: the whole local system in the foreground. ``make up`` runs it.

``python -m emulators up`` starts, on fixed loopback ports (flags change them):

- the Service Bus emulator (AMQP, 5672) with the deployment template's entities
  (``emulators.topology``) and the local ``all`` subscription,
- the ARM simulator (HTTP, 8081) answering the scripted operations of
  ``examples/arm-playground.json`` (format: ``examples/README.md``),
- the managed-identity endpoint (HTTP, 8082),
- the standalone worker (``python -m ops_status worker``) as a child process,

then prints the settings as ``export`` lines (``python -m emulators env`` prints the same
lines without starting anything, for a second shell), writes ``local.settings.json`` for
``func start``, and prints each scripted operation with its status URL. Ctrl-C (SIGINT) or
SIGTERM stops the worker, then the peers, and exits 0; exit 1 when something could not
start or the worker died on its own.

The worker and the CLI use one set of settings: the emulator's connection string
(``ServiceBusConnection``), the ARM simulator's endpoint, and the managed-identity
endpoint as credential, with every poll setting at its production default.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from emulators.arm import DEFAULT_LOCATION, DEFAULT_SUBSCRIPTION_ID, Step, load_scripts
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack
from ops_status import settings as names

__all__ = [
    "DEFAULT_PORTS",
    "EXAMPLE_SCRIPT",
    "LOCAL_SETTINGS",
    "Ports",
    "describe_steps",
    "export_lines",
    "function_settings",
    "playground_settings",
    "run_playground",
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SCRIPT = ROOT / "examples" / "arm-playground.json"
LOCAL_SETTINGS = ROOT / "local.settings.json"
#: ``submit``'s duplicate warnings for this playground: a fresh broker has seen no
#: MessageId yet, so the file is cleared at each start (the user's own history, in
#: ~/.cache/ops-status, would warn about ids this broker never received).
SUBMIT_HISTORY = ROOT / ".playground" / "submitted.json"
HOST = "127.0.0.1"
#: How long the worker gets to finish in-flight messages after SIGTERM.
WORKER_STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Ports:
    servicebus: int = 5672
    arm: int = 8081
    identity: int = 8082


DEFAULT_PORTS = Ports()

# What the peers are, for ``env`` (nothing started). ``run_playground`` prints what the
# running peers report instead; tests/e2e/test_playground.py checks they agree.
_CONNECTION_STRING = (
    "Endpoint=sb://{host}:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
)
_IDENTITY = {"path": "/msi/token", "header": "id-secret"}
_HISTORY_SETTING = "OPS_STATUS_SUBMIT_HISTORY"  # read by the CLI only (ops_status/cli/submit.py)

# Settings the worker must not inherit from the shell that started the playground.
_FOREIGN = ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER")


def playground_settings(ports: Ports = DEFAULT_PORTS) -> dict[str, str]:
    """The settings of a playground on ``ports``, without starting one."""
    return {
        names.INTAKE_QUEUE: INTAKE_QUEUE,
        names.POLLS_QUEUE: POLLS_QUEUE,
        names.EVENTS_TOPIC: EVENTS_TOPIC,
        names.ARM_ENDPOINT: f"http://{HOST}:{ports.arm}",
        names.CREDENTIAL: "managedidentity",
        "IDENTITY_ENDPOINT": f"http://{HOST}:{ports.identity}{_IDENTITY['path']}",
        "IDENTITY_HEADER": _IDENTITY["header"],
        names.SERVICE_BUS_CONNECTION: _CONNECTION_STRING.format(host=HOST, port=ports.servicebus),
        _HISTORY_SETTING: str(SUBMIT_HISTORY),
    }


def stack_settings(stack: LocalStack) -> dict[str, str]:
    """The settings of a running stack (the same names as ``playground_settings``)."""
    return {**stack.environment(identity_based=False), _HISTORY_SETTING: str(SUBMIT_HISTORY)}


def export_lines(settings: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines a POSIX shell can ``eval``."""
    return [f"export {name}={shlex.quote(value)}" for name, value in settings.items()]


def function_settings(settings: Mapping[str, str]) -> dict[str, Any]:
    """``local.settings.json`` for ``func start`` on the playground: the Functions host's
    own settings, the playground's, and every other setting at its default.

    ``ServiceBusConnection__fullyQualifiedNamespace`` is present but empty: the emulator
    is reached by connection string (the Functions host cannot use an identity-based
    connection without TLS).
    """
    values: dict[str, str] = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "AzureWebJobsFeatureFlags": "EnableWorkerIndexing",
        "PYTHON_THREADPOOL_THREAD_COUNT": "32",  # as infra/azuredeploy.json ("threads")
        names.SERVICE_BUS_CONNECTION: settings[names.SERVICE_BUS_CONNECTION],
        names.SERVICE_BUS_NAMESPACE: "",
    }
    values.update(
        (name, settings[name])
        for name in settings
        if name not in (names.SERVICE_BUS_CONNECTION, _HISTORY_SETTING)
    )
    for name, default in names.SETTINGS_WITH_DEFAULTS.items():
        values.setdefault(name, default)
    return {"IsEncrypted": False, "Values": values}


def describe_steps(steps: Iterable[Step]) -> str:
    """One line per script, e.g. ``Updating for 2 s -> Failed (ResourceOperationFailure)``."""
    steps = list(steps)
    parts = []
    for step in steps:
        if step.status is not None:
            text = step.status
            if step.percent_complete is not None:
                text += f" {step.percent_complete:g}%"
        else:
            text = f"{step.kind} (HTTP {step.http_status}"
            if "Retry-After" in step.headers:
                text += f", Retry-After {step.headers['Retry-After']}"
            text += ")"
        if step.kind == "failed" and step.error:
            text += f" ({step.error.get('code')})"
        if step.for_seconds is not None:
            text += f" for {step.for_seconds:g} s"
        elif step.repeat > 1:
            text += f" x{step.repeat}"
        parts.append(text)
    if steps and not steps[-1].terminal:
        parts[-1] += " (never ends)"
    return " -> ".join(parts)


def _write_local_settings(path: Path, document: Mapping[str, Any], out: TextIO) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") != text and not _is_local(path):
        out.write(
            f"{path.name}: left as it is (it points at a real namespace); "
            "delete it or pass --local-settings PATH to get the playground's\n"
        )
        return
    kept = ""
    if path.exists() and path.read_text(encoding="utf-8") != text:
        # An earlier playground's file, perhaps edited by hand: keep one copy.
        backup = path.with_name(path.name + ".bak")
        path.replace(backup)
        kept = f"; the one it replaces is {backup.name}"
    path.write_text(text, encoding="utf-8")
    out.write(f"Wrote {path} for `func start` (run the playground with --no-worker then){kept}\n")


def _is_local(path: Path) -> bool:
    """Whether an existing settings file is one for a local emulator (ours to replace)."""
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (ValueError, AttributeError):
        return False
    connection = str(values.get(names.SERVICE_BUS_CONNECTION, ""))
    return "UseDevelopmentEmulator=true" in connection and not values.get(
        names.SERVICE_BUS_NAMESPACE
    )


def run_playground(
    *,
    ports: Ports = DEFAULT_PORTS,
    script: Path | None = EXAMPLE_SCRIPT,
    local_settings: Path | None = LOCAL_SETTINGS,
    worker: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code (0 after a clean stop)."""
    scripts = load_scripts(script) if script is not None else {}
    stopped = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(
        servicebus_port=ports.servicebus, arm_port=ports.arm, identity_port=ports.identity
    )
    child: subprocess.Popen[bytes] | None = None
    try:
        try:
            stack.start()
        except Exception as exc:  # noqa: BLE001 - a port in use, mostly: say so and stop
            out.write(
                f"error: cannot start the local peers: {exc}\n"
                "(is a playground already running? --servicebus-port, --arm-port and "
                "--identity-port choose other ports)\n"
            )
            return 1
        SUBMIT_HISTORY.unlink(missing_ok=True)
        for operation_id, steps in scripts.items():
            stack.arm.script(operation_id, steps)
        settings = stack_settings(stack)
        if worker:
            child = _start_worker(settings)
        _banner(stack, settings, scripts, script, child, out)
        if local_settings is not None:
            _write_local_settings(local_settings, function_settings(settings), out)
        out.write("Ready. Ctrl-C stops everything.\n")
        out.flush()
        while not stopped.wait(0.2):
            if child is not None and child.poll() is not None:
                out.write(f"error: the worker exited on its own (exit code {child.returncode})\n")
                return 1
        out.write("Stopping...\n")
        out.flush()
        return 0
    finally:
        if child is not None:
            _stop_worker(child)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.write("Stopped.\n")
        out.flush()


def _start_worker(settings: Mapping[str, str]) -> subprocess.Popen[bytes]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in _FOREIGN
        and not name.startswith(("OPS_STATUS_", names.SERVICE_BUS_CONNECTION))
    }
    environment.update(settings)
    # Its own session: Ctrl-C reaches only the playground, which stops the worker first
    # (SIGTERM, graceful) and the peers after it.
    return subprocess.Popen(
        [sys.executable, "-m", "ops_status", "worker"],
        env=environment,
        cwd=ROOT,
        start_new_session=True,
    )


def _stop_worker(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _banner(
    stack: LocalStack,
    settings: Mapping[str, str],
    scripts: Mapping[str, list[Step]],
    script: Path | None,
    child: subprocess.Popen[bytes] | None,
    out: TextIO,
) -> None:
    subscriptions = ", ".join(stack.servicebus.config.topics[EVENTS_TOPIC].subscriptions)
    lines = [
        "ops-status playground",
        f"  Service Bus  {stack.servicebus.fully_qualified_namespace}  queues {INTAKE_QUEUE}, "
        f"{POLLS_QUEUE}; topic {EVENTS_TOPIC} (subscriptions {subscriptions})",
        f"  ARM          {stack.arm.endpoint}"
        + (f"  (script {_relative(script)})" if script is not None else ""),
        f"  identity     {stack.identity.endpoint}",
        f"  worker       pid {child.pid}" if child is not None else "  worker       not started",
        "",
        "Settings (in another shell at the repository root: "
        'eval "$(.venv/bin/python -m emulators env)"):',
        *export_lines(settings),
        "# a pipeline's connection string (Send on the intake queue only):",
        f"#   {stack.pipeline_connection_string}",
        "",
    ]
    if scripts:
        lines.append(
            f"Scripted operations (subscription {DEFAULT_SUBSCRIPTION_ID}, "
            f"location {DEFAULT_LOCATION}); each plays once, from its first read:"
        )
        for operation_id, steps in scripts.items():
            lines.append(f"  {operation_id}: {describe_steps(steps)}")
            lines.append(f"    {stack.arm.status_url(operation_id)}")
        lines.append("")
    out.write("\n".join(lines) + "\n")
    out.flush()


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)
