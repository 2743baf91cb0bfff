"""The playground (``make up``) and the README's "Try it by hand" section against it.

One real run: ``python -m emulators up`` as a child process on free ports; its ``export``
lines are what ``python -m emulators env`` prints for those ports; the README's first
walkthrough block runs as written in bash with those settings (submit, then listen on
``failed`` gets the event with ARM's error); SIGINT stops everything with exit 0 and no
worker left. The other blocks are checked against the CLI's options and the
playground's operations and subscriptions without waiting for them (the timed-out watch
alone takes 20 s).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emulators.__main__ import main as emulators_main
from emulators.arm import load_scripts
from emulators.playground import (
    DEFAULT_PORTS,
    EXAMPLE_SCRIPT,
    SUBMIT_HISTORY,
    Ports,
    _write_local_settings,
    export_lines,
    function_settings,
    playground_settings,
    run_playground,
)
from emulators.stack import LocalStack
from ops_status import cli

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def try_it_blocks() -> list[str]:
    """The bash blocks of README "Try it by hand", before its func start subsection."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Try it by hand\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[list[str]]:
    """Each ``python -m ops_status ...`` command of a block, as argv after the module."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["python", "-m", "ops_status"]:
            found.append(words[3:])
    return found


def cli_help(command: str) -> str:
    """``python -m ops_status COMMAND --help``, in-process (the pyproject entry point)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return out.getvalue()


def clean_environment() -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID")
        and not name.startswith(("OPS_STATUS_", "ServiceBusConnection", "IDENTITY_"))
    }
    # What `. .venv/bin/activate` gives the README's `python`.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    return environment


@dataclass
class Playground:
    process: subprocess.Popen[str]
    ports: Ports
    local_settings: Path
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Ready."):
                self.ready.set()
        self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def exports(self) -> dict[str, str]:
        settings = {}
        for line in self.lines:
            if line.startswith("export "):
                name, _, value = shlex.split(line)[1].partition("=")
                settings[name] = value
        return settings

    def worker_pid(self) -> int:
        (pid,) = re.findall(r"^  worker +pid ([0-9]+)$", self.output, re.MULTILINE)
        return int(pid)


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[Playground]:
    ports = Ports(*free_ports(3))
    process = subprocess.Popen(
        [
            sys.executable, "-m", "emulators", "up",
            "--servicebus-port", str(ports.servicebus),
            "--arm-port", str(ports.arm),
            "--identity-port", str(ports.identity),
            "--local-settings", str(tmp_path / "local.settings.json"),
        ],
        cwd=ROOT,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    running = Playground(process, ports, tmp_path / "local.settings.json")
    reader = threading.Thread(target=running.read, daemon=True)
    reader.start()
    try:
        assert running.ready.wait(30), running.output
        assert process.poll() is None, running.output
        yield running
    finally:
        if process.poll() is None:  # the test failed: stop it, worker first, as Ctrl-C does
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(running.worker_pid(), signal.SIGKILL)
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()


def test_playground_runs_the_readme_walkthrough_and_stops_cleanly_on_ctrl_c(
    playground: Playground,
) -> None:
    setup, first, *_ = try_it_blocks()
    assert 'eval "$(python -m emulators env)"' in setup

    walkthrough = subprocess.run(
        ["bash", "-e", "-c", first],
        cwd=ROOT,
        env={**clean_environment(), **playground.exports()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    playground.process.send_signal(signal.SIGINT)
    code = playground.process.wait(timeout=30)

    assert walkthrough.returncode == 1, (walkthrough.stdout, walkthrough.stderr)
    assert re.match(r"[0-9a-f]{32}\n", walkthrough.stdout), walkthrough.stdout
    assert "Failed" in walkthrough.stdout
    assert "QuotaExceeded" in walkthrough.stdout
    assert code == 0, playground.output
    assert playground.lines[-1] == "Stopped.", playground.output
    with pytest.raises(ProcessLookupError):
        os.kill(playground.worker_pid(), 0)
    # What up printed is what `env` prints for these ports, and local.settings.json holds it.
    assert playground.exports() == playground_settings(playground.ports)
    assert export_lines(playground.exports()) == [
        line for line in playground.lines if line.startswith("export ")
    ]
    written = json.loads(playground.local_settings.read_text(encoding="utf-8"))
    assert written == function_settings(playground_settings(playground.ports))
    for operation_id in load_scripts(EXAMPLE_SCRIPT):
        assert f"/operationsStatus/{operation_id}?api-version=" in playground.output


def test_env_prints_the_same_lines_as_up_for_the_default_ports() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = emulators_main(["env"])

    assert code == 0
    assert out.getvalue().splitlines() == export_lines(playground_settings(DEFAULT_PORTS))


def test_submit_keeps_a_history_of_its_own_for_the_playground() -> None:
    # A restarted playground is a fresh broker: the user's ~/.cache history would warn
    # about MessageIds it never received. The file is cleared at each start.
    settings = playground_settings(DEFAULT_PORTS)

    assert settings["OPS_STATUS_SUBMIT_HISTORY"] == str(SUBMIT_HISTORY)
    assert "OPS_STATUS_SUBMIT_HISTORY" not in function_settings(settings)["Values"]


def test_a_local_settings_file_it_replaces_is_kept_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    edited = function_settings(playground_settings(DEFAULT_PORTS))
    edited["Values"]["MY_OWN"] = "kept"
    path.write_text(json.dumps(edited), encoding="utf-8")
    out = io.StringIO()

    _write_local_settings(path, function_settings(playground_settings(DEFAULT_PORTS)), out)

    assert json.loads((tmp_path / "local.settings.json.bak").read_text())["Values"]["MY_OWN"]
    assert "MY_OWN" not in json.loads(path.read_text())["Values"]
    assert "local.settings.json.bak" in out.getvalue()


def test_the_sample_local_settings_are_what_the_playground_writes() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))

    assert sample == function_settings(playground_settings(DEFAULT_PORTS))


def test_every_readme_command_fits_the_cli_and_the_playground() -> None:
    blocks = try_it_blocks()
    used = [argv for block in blocks[1:] for argv in commands(block)]
    scripts = load_scripts(EXAMPLE_SCRIPT)
    subscriptions = set(LocalStack().servicebus.config.topics["ops-status-events"].subscriptions)
    helps = {name: cli_help(name) for name in {argv[0] for argv in used}}
    default_urls = playground_settings(DEFAULT_PORTS)["OPS_STATUS_ARM_ENDPOINT"]

    assert {argv[0] for argv in used} == {"submit", "listen", "check", "watch"}
    for argv in used:
        options = dict(zip(argv[1::2], argv[2::2], strict=False))
        for flag in (word for word in argv[1:] if word.startswith("--")):
            assert re.search(rf"(^|\s){re.escape(flag)}\b", helps[argv[0]]), (flag, argv)
        if "--operation-id" in options and argv[0] != "listen":
            assert options["--operation-id"] in scripts, argv
        if "--subscription-name" in options:
            assert options["--subscription-name"] in subscriptions, argv
        if "--status-url" in options:
            url = options["--status-url"]
            assert url.startswith(default_urls + "/subscriptions/"), url
            assert url.split("/operationsStatus/")[1].split("?")[0] in scripts, url
    slow = [argv for argv in used if argv[0] == "submit" and "cache-slow" in argv]
    assert slow
    assert not scripts["cache-slow"][-1].terminal
    assert all(float(argv[argv.index("--timeout") + 1]) <= 30 for argv in slow)


def test_playground_says_so_and_exits_1_when_a_port_is_taken(tmp_path: Path) -> None:
    out = io.StringIO()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        servicebus, identity = free_ports(2)
        ports = Ports(servicebus, taken.getsockname()[1], identity)

        code = run_playground(ports=ports, local_settings=tmp_path / "local.settings.json", out=out)

    assert code == 1, out.getvalue()
    assert "cannot start the local peers" in out.getvalue()
    assert "--arm-port" in out.getvalue()
    assert not (tmp_path / "local.settings.json").exists()


def test_the_script_format_example_in_examples_readme_loads(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```json\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    (tmp_path / "script.json").write_text(block, encoding="utf-8")

    scripts = load_scripts(tmp_path / "script.json")

    assert scripts["cache-create"][-1].terminal
    assert scripts["cache-delete"][0].http_status == 429
