"""Cold start: importing ``function_app`` and handling the first message in a fresh process.

Run: ``python -m benchmarks.cold_start [--repeat 10]``.

Three measurements, each in fresh interpreter processes started with the app settings of
a ``LocalStack`` (managed-identity endpoint, ARM simulator, Service Bus emulator) running
in this process:

1. Import time: ``python -X importtime -c "import function_app"`` next to
   ``python -X importtime -c "import azure.functions, azure.identity, azure.servicebus,
   requests"`` (the bare SDKs), alternated, ``--repeat`` times each. The figure is the sum
   of the cumulative microseconds of the top-level imports, leaving out what the
   interpreter imports before running ``-c`` (the top-level names of ``-c pass``). Also
   reported: the self time of our own modules (``function_app``, ``ops_status.*``), and
   which SDKs the import pulls in. Bytecode is controlled, not left to the checkout:
   every child uses a private ``PYTHONPYCACHEPREFIX`` (nothing is written to the repo),
   warmed once, so the SDKs always load from ``.pyc``; ``function_app`` is measured with
   its own ``.pyc`` ("cached") and with them deleted before each run ("source": what a
   read-only run-from-package deployment without shipped bytecode pays on every start).
   Each round runs every command once in a shuffled order (seeded): with a fixed order the
   process that ran just before biased the next one's figures.
2. No I/O at import: the identity endpoint and the ARM simulator must see zero requests,
   and the emulator zero AMQP connections, across every import above plus one process that
   imports ``function_app`` and then lingers for a second (a background thread started at
   import would show up there).
3. First handled message: a fresh process imports ``function_app``, builds the process's
   dependencies (``get_dependencies``: credential, HTTP session, Service Bus client, no
   I/O), calls the decorated ``watch_intake`` with one ``azure.functions``
   ``ServiceBusMessage`` for a running operation (token requests, ARM read, AMQP
   connection, scheduled send), then a second one (warm). Times are from just before the
   process was spawned (``time.monotonic`` is system-wide on Linux).

4. ``--processes`` (issue 12 §2 and 13 §4): paired whole-process timings, spawn to exit
   and spawn to "imported", of ``-c pass``, the SDKs ``function_app`` imports at start-up
   (checked in a child: azure.functions, azure.servicebus, requests; not azure.identity),
   ``import function_app`` with no export, with Application Insights and with OTLP
   configured (loopback ingestion and collector, so the exit flush answers at once), and the
   first message's extra start-up work (``get_dependencies``: imports azure.identity, builds
   the credential and clients, no I/O). Each round runs every command once in a shuffled
   order; per-round differences against the baseline are the paired figures.

Medians are reported; targets: our import adds at most 15 % over the SDKs function_app
imports at start-up (azure.functions, azure.servicebus, requests: like for like, since
azure.identity waits for the first message; the set with azure.identity is reported too),
and no network, credential or client work at import time.

One script, long because its measurements must share one harness to be comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OURS = "import function_app"
BARE = "import azure.functions, azure.identity, azure.servicebus, requests"
# The SDKs function_app itself imports (azure.identity waits for the first message).
BARE_SAME = "import azure.functions, azure.servicebus, requests"
SDKS = ("azure.functions", "azure.identity", "azure.servicebus", "requests", "azure.core", "msal")
TARGET_OVERHEAD = 0.15
_FOREIGN_IDENTITY = ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE")
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")

# The child that handles the first message. Its first statement takes the time.
_FIRST_MESSAGE = """\
import time
t_started = time.monotonic()
import json, os, sys
import function_app
t_imported = time.monotonic()
from ops_status.bootstrap import get_dependencies, reset_dependencies
get_dependencies(function_app.settings)
t_built = time.monotonic()
import datetime
from azure.functions.servicebus import ServiceBusMessage
def message(body, message_id):
    return ServiceBusMessage(body=body.encode(), message_id=message_id, delivery_count=1,
                             content_type="application/json", application_properties={},
                             user_properties={}, sequence_number=1,
                             enqueued_time_utc=datetime.datetime.now(datetime.timezone.utc))
bodies = json.loads(os.environ["BENCH_BODIES"])
function_app.watch_intake(message(*bodies[0]))
t_first = time.monotonic()
function_app.watch_intake(message(*bodies[1]))
t_second = time.monotonic()
reset_dependencies()
print(json.dumps({"started": t_started, "imported": t_imported, "built": t_built,
                  "first": t_first, "second": t_second}))
"""

_LINGER = "import time, function_app; time.sleep(1.0)"


@dataclass(frozen=True)
class ImportProfile:
    """One ``-X importtime`` run."""

    total_us: int
    """Sum of the cumulative times of the top-level imports (startup imports left out)."""
    own_self_us: int
    """Self time of ``function_app`` and ``ops_status.*``."""
    modules: frozenset[str]
    wall_s: float
    cpu_s: float
    """User + system CPU of the whole child process (robust when the machine is busy)."""


def parse_importtime(stderr: str) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) for every ``-X importtime`` line."""
    rows = []
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            depth = len(match.group(3)) // 2
            rows.append((int(match.group(1)), int(match.group(2)), depth, match.group(4)))
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profile_import(code: str, env: Mapping[str, str], startup: frozenset[str]) -> ImportProfile:
    cpu_before = _children_cpu()
    began = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - began
    cpu = _children_cpu() - cpu_before
    if completed.returncode != 0:
        raise RuntimeError(f"{code!r} failed: {completed.stderr[-2000:]}")
    rows = parse_importtime(completed.stderr)
    total = sum(cum for _, cum, depth, name in rows if depth == 0 and name not in startup)
    own = sum(
        own
        for own, _, _, name in rows
        if name == "function_app" or name == "ops_status" or name.startswith("ops_status.")
    )
    return ImportProfile(total, own, frozenset(name for *_, name in rows), wall, cpu)


def startup_modules(env: Mapping[str, str], runs: int = 2) -> frozenset[str]:
    """Top-level names the interpreter imports before ``-c`` runs (site, encodings, ...)."""
    names: set[str] = set()
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "pass"],
            env=dict(env),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        names.update(name for *_, depth, name in parse_importtime(completed.stderr) if depth == 0)
    return frozenset(names)


@dataclass
class IoCounters:
    token_requests: int
    arm_requests: int
    arm_connections: int
    amqp_connections: int

    def __sub__(self, other: IoCounters) -> IoCounters:
        return IoCounters(
            self.token_requests - other.token_requests,
            self.arm_requests - other.arm_requests,
            self.arm_connections - other.arm_connections,
            self.amqp_connections - other.amqp_connections,
        )

    @property
    def zero(self) -> bool:
        return not any(
            (self.token_requests, self.arm_requests, self.arm_connections, self.amqp_connections)
        )


def _median(values: Iterable[float]) -> float:
    """The median, or NaN when there is nothing to take it of (rows a quick run skips)."""
    collected = list(values)
    return statistics.median(collected) if collected else math.nan


@dataclass
class ColdStartReport:
    repeat: int
    ours: list[ImportProfile]
    bare: list[ImportProfile]
    import_io: IoCounters
    first_message: list[dict[str, float]]
    first_message_io: IoCounters | None
    ours_source: list[ImportProfile] = field(default_factory=list)
    bare_same: list[ImportProfile] = field(default_factory=list)
    empty: list[ImportProfile] = field(default_factory=list)
    """``-c pass``: the interpreter's own start-up, subtracted from the CPU figures."""
    wall_time: float = 0.0
    sdk_modules: dict[str, bool] = field(default_factory=dict)

    @property
    def ours_ms(self) -> float:
        return _median(p.total_us for p in self.ours) / 1000

    @property
    def bare_ms(self) -> float:
        return _median(p.total_us for p in self.bare) / 1000

    @property
    def own_ms(self) -> float:
        return _median(p.own_self_us for p in self.ours) / 1000

    @property
    def overhead(self) -> float:
        return self.ours_ms / self.bare_ms - 1

    @property
    def bare_same_ms(self) -> float:
        return _median(p.total_us for p in self.bare_same) / 1000

    @property
    def overhead_same(self) -> float:
        """Over the SDKs function_app really imports: what our own code adds."""
        return self.ours_ms / self.bare_same_ms - 1

    @property
    def overhead_cpu_same(self) -> float:
        return self.import_cpu_ms(self.ours) / self.import_cpu_ms(self.bare_same) - 1

    @property
    def ours_source_ms(self) -> float:
        return _median(p.total_us for p in self.ours_source) / 1000

    @property
    def own_source_ms(self) -> float:
        return _median(p.own_self_us for p in self.ours_source) / 1000

    @property
    def overhead_source(self) -> float:
        return self.ours_source_ms / self.bare_ms - 1

    def import_cpu_ms(self, profiles: Sequence[ImportProfile]) -> float:
        """Median CPU of the child minus the median CPU of ``-c pass``."""
        startup = _median(p.cpu_s for p in self.empty) if self.empty else 0.0
        return (_median(p.cpu_s for p in profiles) - startup) * 1000

    @property
    def overhead_cpu(self) -> float:
        return self.import_cpu_ms(self.ours) / self.import_cpu_ms(self.bare) - 1

    @property
    def overhead_cpu_source(self) -> float:
        return self.import_cpu_ms(self.ours_source) / self.import_cpu_ms(self.bare) - 1

    def phase_ms(self, key: str) -> float:
        return _median(run[key] for run in self.first_message) * 1000


def _child_environment(app_settings: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_IDENTITY}
    env.update(app_settings)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _io(stack: Any) -> IoCounters:
    return IoCounters(
        stack.identity.request_count(),
        len(stack.arm.requests),
        stack.arm.connections_opened,
        stack.servicebus.connections_opened,
    )


def _watch_body(operation_id: str) -> str:
    return json.dumps(
        {
            "subscriptionId": "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f",
            "location": "West US",
            "operationId": operation_id,
            "correlationId": f"cold-start-{operation_id[-8:]}",
            "context": {"pipeline": "deploy-cache"},
        }
    )


def first_message_run(stack: Any, env: Mapping[str, str]) -> dict[str, float]:
    """One fresh process to its second handled message; phases in seconds from spawn."""
    from emulators.arm import Step

    bodies = []
    for _ in range(2):
        operation_id = f"cold-{uuid.uuid4()}"
        stack.arm.script(operation_id, [Step.running("Running", percent_complete=10)])
        bodies.append([_watch_body(operation_id), f"{operation_id}.0"])
    child_env = {**env, "BENCH_BODIES": json.dumps(bodies)}
    spawned = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", _FIRST_MESSAGE],
        env=child_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"first-message child failed: {completed.stderr[-2000:]}")
    marks = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "started": marks["started"] - spawned,
        "imported": marks["imported"] - spawned,
        "built": marks["built"] - spawned,
        "first": marks["first"] - spawned,
        "second": marks["second"] - marks["first"],
    }


def _drop_own_bytecode(prefix: Path) -> None:
    """Delete the cached bytecode of function_app and ops_status under ``prefix``."""
    mirror = prefix / REPO.relative_to(REPO.anchor)
    shutil.rmtree(mirror / "ops_status", ignore_errors=True)
    for cached in mirror.glob("function_app.*.pyc"):
        cached.unlink()


def _profile_from_source(
    prefix: Path, env: Mapping[str, str], from_source: Mapping[str, str], startup: frozenset[str]
) -> ImportProfile:
    """``function_app`` with its bytecode deleted first; then the bytecode is written again."""
    _drop_own_bytecode(prefix)
    profile = profile_import(OURS, from_source, startup)
    profile_import(OURS, env, startup)  # unmeasured: writes our .pyc again
    return profile


def run_cold_start(
    repeat: int = 10, first_message_repeat: int | None = None, *, quick: bool = False
) -> ColdStartReport:
    """Start a LocalStack here and measure in fresh child processes.

    ``quick`` (the smoke test): bytecode as the checkout has it, no warm-up, only the "ours"
    row, a short linger. Same structure, no comparable figures.
    """
    from emulators.stack import LocalStack

    began = time.perf_counter()
    with LocalStack() as stack, tempfile.TemporaryDirectory(prefix="cold-start-pyc-") as cache:
        prefix = Path(cache)
        # Follow-ups far in the future: nothing comes back while we measure.
        app_settings = stack.environment(
            identity_based=True,
            OPS_STATUS_POLL_MIN_DELAY="600",
            OPS_STATUS_POLL_MAX_DELAY="900",
        )
        env = _child_environment(app_settings)
        if not quick:
            env["PYTHONPYCACHEPREFIX"] = str(prefix)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        from_source = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        startup = startup_modules(env, runs=1 if quick else 2)
        before = _io(stack)
        report = ColdStartReport(repeat, [], [], IoCounters(0, 0, 0, 0), [], None)
        if not quick:
            profile_import(OURS, env, startup)  # unmeasured: fills the bytecode cache
            profile_import(BARE, env, startup)
        # Each round runs every command once, in a shuffled order: the process before leaves
        # caches warm, and a fixed order turned that into a steady bias between the rows.
        shuffle = random.Random(7).shuffle
        for _ in range(repeat):
            rounds: list[Callable[[], None]] = [
                lambda: report.ours.append(profile_import(OURS, env, startup))
            ]
            if not quick:
                rounds += [
                    lambda: report.empty.append(profile_import("pass", env, startup)),
                    lambda: report.bare.append(profile_import(BARE, env, startup)),
                    lambda: report.bare_same.append(profile_import(BARE_SAME, env, startup)),
                    lambda: report.ours_source.append(
                        _profile_from_source(prefix, env, from_source, startup)
                    ),
                ]
            shuffle(rounds)
            for run in rounds:
                run()
        linger = _LINGER.replace("1.0", "0.2") if quick else _LINGER
        subprocess.run([sys.executable, "-c", linger], env=env, cwd=REPO, timeout=60, check=True)
        report.import_io = _io(stack) - before

        for index in range(first_message_repeat or repeat):
            mark = _io(stack)
            report.first_message.append(first_message_run(stack, env))
            if index == 0:
                report.first_message_io = _io(stack) - mark
    report.sdk_modules = {sdk: sdk in report.ours[0].modules for sdk in SDKS}
    report.wall_time = time.perf_counter() - began
    return report


def _range_ms(profiles: Sequence[ImportProfile]) -> str:
    """min-max of the import figure, in ms."""
    values = [p.total_us / 1000 for p in profiles]
    return f"{min(values):.0f}-{max(values):.0f}"


def _wall_ms(profiles: Sequence[ImportProfile]) -> float:
    return statistics.median(p.wall_s for p in profiles) * 1000


def format_report(report: ColdStartReport) -> str:
    width = 78
    rows = [
        ("bare: " + BARE, report.bare, None),
        ("bare, no azure.identity: " + BARE_SAME, report.bare_same, None),
        ("ours, .pyc cached: " + OURS, report.ours, report.own_ms),
        ("ours, app code from source: " + OURS, report.ours_source, report.own_source_ms),
    ]
    lines = [
        f"Import: {report.repeat} fresh processes each, interleaved; SDKs load from .pyc",
        f"{'':<{width}} {'import ms':>9} {'min-max':>9} {'CPU ms':>6} {'own ms':>6} "
        f"{'process ms':>10}",
    ]
    for label, profiles, own in rows:
        if not profiles:
            continue
        median = statistics.median(p.total_us for p in profiles) / 1000
        own_text = f"{own:.1f}" if own is not None else ""
        lines.append(
            f"{label:<{width}} {median:>9.1f} {_range_ms(profiles):>9} "
            f"{report.import_cpu_ms(profiles):>6.0f} {own_text:>6} {_wall_ms(profiles):>10.0f}"
        )
    lines += [
        "(medians. import ms: sum of the top-level cumulative -X importtime figures; CPU ms:",
        " user+sys of the child minus that of `-c pass`; own ms: self time of function_app and",
        " ops_status.*; process ms: spawn to exit, wall)",
        f"ours vs bare: import ms {report.overhead:+.1%} with .pyc, "
        f"{report.overhead_source:+.1%} from source; CPU {report.overhead_cpu:+.1%} with .pyc, "
        f"{report.overhead_cpu_source:+.1%} from source",
        f"ours vs the SDKs it imports (no azure.identity): import ms {report.overhead_same:+.1%}"
        " with .pyc",
        "imported by function_app: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in report.sdk_modules.items()),
        f"I/O during import (all runs + a 1 s linger): token requests "
        f"{report.import_io.token_requests}, ARM requests {report.import_io.arm_requests}, "
        f"ARM connections {report.import_io.arm_connections}, AMQP connections "
        f"{report.import_io.amqp_connections}",
        "",
        f"First message: {len(report.first_message)} fresh processes, ms from spawn (median),"
        " .pyc cached",
        f"  interpreter up            {report.phase_ms('started'):>8.0f}",
        f"  function_app imported     {report.phase_ms('imported'):>8.0f}",
        f"  dependencies built        {report.phase_ms('built'):>8.0f}"
        "   (imports azure.identity; credential, session, client; no I/O)",
        f"  first message handled     {report.phase_ms('first'):>8.0f}"
        "   (2 tokens, ARM read, AMQP connect + CBS, scheduled send)",
        f"  second message (warm)     {report.phase_ms('second'):>8.1f}",
    ]
    if report.first_message_io is not None:
        io = report.first_message_io
        lines.append(
            f"  one process, both messages: token requests {io.token_requests}, ARM requests "
            f"{io.arm_requests}, ARM connections {io.arm_connections}, AMQP connections "
            f"{io.amqp_connections}"
        )
    return "\n".join(lines)


def targets(report: ColdStartReport) -> list[tuple[str, bool, str]]:
    limit = TARGET_OVERHEAD
    return [
        (
            # Like for like (issue 13 section 4): azure.identity waits for the first message,
            # so a baseline that includes it hides ~100 ms of our own cost behind it.
            f"import adds <= {limit:.0%} over the SDKs it imports (.pyc)",
            report.overhead_same <= limit and report.overhead_cpu_same <= limit,
            f"import ms {report.overhead_same:+.1%}, CPU {report.overhead_cpu_same:+.1%}",
        ),
        (
            f"import adds <= {limit:.0%} over the bare SDKs, azure.identity included (.pyc)",
            report.overhead <= limit and report.overhead_cpu <= limit,
            f"import ms {report.overhead:+.1%}, CPU {report.overhead_cpu:+.1%}",
        ),
        (
            f"import adds <= {limit:.0%} over the bare SDKs (source)",
            report.overhead_source <= limit and report.overhead_cpu_source <= limit,
            f"import ms {report.overhead_source:+.1%}, CPU {report.overhead_cpu_source:+.1%}",
        ),
        (
            "no network, credential or client work at import",
            report.import_io.zero,
            "zero" if report.import_io.zero else str(report.import_io),
        ),
    ]


# -- 4. paired whole-process timings ------------------------------------------------------

_MARKED = """\
import json, sys, time
{code}
print(json.dumps({{"imported": time.monotonic(), "modules": {modules}}}))
"""
_APP_IMPORT = "import function_app"
_FIRST_MESSAGE_START = (
    "import function_app\n"
    "from ops_status.bootstrap import get_dependencies\n"
    "get_dependencies(function_app.settings)"
)
_PROCESS_SETTINGS = {
    "OPS_STATUS_INTAKE_QUEUE": "ops-status-intake",
    "OPS_STATUS_POLLS_QUEUE": "ops-status-polls",
    "OPS_STATUS_EVENTS_TOPIC": "ops-status-events",
    "ServiceBusConnection__fullyQualifiedNamespace": "sb-bench.servicebus.windows.net",
    # Only loopback peers: no statsbeat, SDK stats or control-plane traffic, no IMDS probe.
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
}


@dataclass
class ProcessTimings:
    """Per command: (spawn to exit, spawn to the end of its imports) in seconds, per round."""

    repeat: int
    labels: dict[str, str]
    whole: dict[str, list[float]] = field(default_factory=dict)
    imported: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """User + system CPU of the child: robust when the machine is busy."""
    startup_sdks: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _loopback_sink() -> tuple[Any, str]:
    """An HTTP server that accepts every POST: OTLP collector and ingestion endpoint alike."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b'{"itemsReceived": 0, "itemsAccepted": 0, "errors": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _timed_child(code: str, env: Mapping[str, str]) -> tuple[float, float, float, list[str]]:
    cpu_before = _children_cpu()
    spawned = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    exited = time.monotonic()
    cpu = _children_cpu() - cpu_before
    if completed.returncode != 0:
        raise RuntimeError(f"{code!r} failed: {completed.stderr[-2000:]}")
    marks = json.loads(completed.stdout.strip().splitlines()[-1])
    return exited - spawned, marks["imported"] - spawned, cpu, marks["modules"]


def run_process_timings(repeat: int = 15, seed: int = 7) -> ProcessTimings:
    """Interleaved fresh processes; see the module docstring, measurement 4."""
    server, sink = _loopback_sink()
    base = _child_environment(_PROCESS_SETTINGS)
    for name in list(base):
        if name.startswith(("OTEL_EXPORTER_", "APPLICATIONINSIGHTS_CONNECTION")):
            del base[name]
    appinsights = {
        **base,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey=00000000-0000-0000-0000-0000000000a1;IngestionEndpoint={sink}/"
        ),
    }
    otlp = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": sink}
    sdks = "[m for m in ('azure.functions', 'azure.servicebus', 'requests', 'azure.identity')"
    sdks += " if m in sys.modules]"
    commands: dict[str, tuple[str, Mapping[str, str]]] = {
        "interpreter": ("pass", base),
        "baseline": (BARE_SAME, base),
        "app": (_APP_IMPORT, base),
        "app+appinsights": (_APP_IMPORT, appinsights),
        "app+otlp": (_APP_IMPORT, otlp),
        "app+first-message start": (_FIRST_MESSAGE_START, base),
        "app+azure.identity": (_APP_IMPORT + ", azure.identity", base),
    }
    timings = ProcessTimings(
        repeat,
        {
            "interpreter": "python -c pass",
            "baseline": BARE_SAME + "  (what function_app imports at start-up)",
            "app": "import function_app, no export configured",
            "app+appinsights": "import function_app, APPLICATIONINSIGHTS_CONNECTION_STRING set",
            "app+otlp": "import function_app, OTEL_EXPORTER_OTLP_ENDPOINT set",
            "app+first-message start": "import function_app + get_dependencies (no I/O)",
            "app+azure.identity": "import function_app, azure.identity",
        },
    )
    # What function_app pulls in at start-up, from the process that imports it.
    *_, modules = _timed_child(_MARKED.format(code=_APP_IMPORT, modules=sdks), base)
    if modules != ["azure.functions", "azure.servicebus", "requests"]:
        raise RuntimeError(f"function_app's start-up imports changed ({modules}): fix BARE_SAME")
    timings.startup_sdks = modules
    for code, env in commands.values():  # unmeasured: fills the bytecode caches
        _timed_child(_MARKED.format(code=code, modules="[]"), env)
    timings.load_before = os.getloadavg()
    shuffle = random.Random(seed).shuffle
    try:
        for _ in range(repeat):
            order = list(commands)
            shuffle(order)
            for label in order:
                code, env = commands[label]
                whole, imported, cpu, _ = _timed_child(_MARKED.format(code=code, modules="[]"), env)
                timings.whole.setdefault(label, []).append(whole)
                timings.imported.setdefault(label, []).append(imported)
                timings.cpu.setdefault(label, []).append(cpu)
    finally:
        server.shutdown()
        server.server_close()
    timings.load_after = os.getloadavg()
    return timings


def _spread_ms(values: Sequence[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{ms[0]:>7.0f} {statistics.median(ms):>7.0f} {ms[-1]:>7.0f}"


def format_process_timings(timings: ProcessTimings) -> str:
    width = 62
    lines = [
        f"Whole-process timings: {timings.repeat} rounds, every command once per round in a "
        f"shuffled order; {os.cpu_count()} CPUs, load average "
        f"{timings.load_before[0]:.2f} before, {timings.load_after[0]:.2f} after",
        "function_app imports at start-up: " + ", ".join(timings.startup_sdks),
        f"{'':<{width}} {'spawn to exit, ms':^23} {'spawn to imported, ms':^23} "
        f"{'CPU (user+sys), ms':^23}",
        f"{'':<{width}}" + f" {'min':>7} {'median':>7} {'max':>7}" * 3,
    ]
    for label, text in timings.labels.items():
        lines.append(
            f"{text[:width]:<{width}} {_spread_ms(timings.whole[label])} "
            f"{_spread_ms(timings.imported[label])} {_spread_ms(timings.cpu[label])}"
        )
    lines.append("")
    lines.append("Paired differences (per round, then min/median/max), ms: spawn to exit | CPU")
    pairs = [
        ("app", "baseline", "our code over the SDKs it imports"),
        ("app+appinsights", "app", "Application Insights export configured"),
        ("app+otlp", "app", "OTLP export configured"),
        ("app+first-message start", "app", "first message's start-up (azure.identity, clients)"),
        ("app+azure.identity", "app", "azure.identity import alone"),
        ("baseline", "interpreter", "the SDKs over a bare interpreter"),
    ]
    for label, against, text in pairs:
        wall = [a - b for a, b in zip(timings.whole[label], timings.whole[against], strict=True)]
        cpu = [a - b for a, b in zip(timings.cpu[label], timings.cpu[against], strict=True)]
        ratio = statistics.median(timings.cpu[label]) / statistics.median(timings.cpu[against])
        lines.append(
            f"  {text:<52} {_spread_ms(wall)} | {_spread_ms(cpu)}   (CPU medians {ratio - 1:+.1%})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--first-message-repeat", type=int, default=None, help="default: --repeat")
    parser.add_argument(
        "--processes",
        action="store_true",
        help="only measurement 4: paired whole-process timings (--repeat rounds, at least 15)",
    )
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if args.processes:
        print(format_process_timings(run_process_timings(max(args.repeat, 15))))
        return 0
    report = run_cold_start(args.repeat, args.first_message_repeat)
    print(format_report(report))
    print()
    for name, met, value in targets(report):
        print(f"  target {name:<52} {'met' if met else 'NOT met'} ({value})")
    print(f"\nwall time {report.wall_time:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
