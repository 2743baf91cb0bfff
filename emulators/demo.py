"""The demo: the product's main job, end to end, on a local stack. ``make demo`` runs it.

It starts the local peers (identity endpoint, ARM, Service Bus over AMQP) and the real
worker (``python -m ops_status worker``) as a child process pointed at them, then drives
each watch as a pipeline would, through the ``ops-status`` command line only:

- ``python -m ops_status submit`` with the pipeline's send-only connection string (a
  Send rule on the intake queue, nothing else); a request ``submit`` refuses is then sent
  raw, as a pipeline posting its own message could, to show the function rejecting it;
- ``python -m ops_status listen --submission-id ... --json``: the pipeline's gate, which
  prints the watch's terminal CloudEvent and exits with its outcome;
- once, while watches are in flight, ``python -m ops_status ls``: an operator's list of the
  follow-ups waiting on the polls queue, browsed without taking any.

Progress comes from the worker's own log lines (read from its stderr through a pipe: no
file is written), e.g. a throttled read shown as ``429, Retry-After 4 s honoured``. The
worker is stopped as soon as its log shows every watch ended, so its shutdown overlaps
the gates' last reads. At the end one terminal CloudEvent is printed in full, then each
watch's trace as a small tree (the spans the ``submit`` and worker processes recorded,
through ``emulators.spans``), with its trace id checked against the one ``submit`` printed
and the event's ``traceparent``, then a summary.

Exit code 0 when every watch ended with the expected event and gate exit code within
the time limit, and the throttled read was honoured.

One module, close to 600 lines: it is a script read top to bottom, one story.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.arm import Step
from emulators.spans import read_spans, span_tree
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack

__all__ = ["run_demo"]

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
THROTTLE_RETRY_AFTER = 4
QUOTA_ERROR = {
    "code": "ResourceOperationFailure",
    "message": "The resource operation completed with terminal provisioning state 'Failed'.",
    "target": "redisEnterprise/cache-scale-demo",
    "details": [
        {
            "code": "QuotaExceeded",
            "message": "Operation results in exceeding approved Redis quota in West US.",
            "target": "sku.capacity",
            "additionalInfo": [
                {"type": "QuotaInfo", "info": {"currentUsage": 8, "limit": 8, "requested": 2}}
            ],
        }
    ],
}
#: The watch whose terminal event is printed in full.
SHOWN_IN_FULL = "cache-scale"
#: What a gate's exit code means (the CLI's table).
GATE_EXIT = {0: "succeeded", 1: "failed, canceled or rejected", 2: "timed out"}


@dataclass(frozen=True)
class DemoWatch:
    name: str
    submit: list[str]
    """``submit`` arguments naming the operation (the correlation id is added)."""
    steps: list[Step]
    expected: str
    expected_exit: int
    story: str


def _watches() -> list[DemoWatch]:
    def parts(operation_id: str) -> list[str]:
        return [
            "--subscription", SUBSCRIPTION, "--location", "West US",
            "--operation-id", operation_id,
            "--context", "pipeline=demo", "--context", f"step={operation_id}",
        ]  # fmt: skip

    return [
        DemoWatch(
            "cache-create",
            parts("cache-create"),
            [Step.running(status="Creating", percent_complete=p) for p in (10, 35, 60, 85)]
            + [Step.succeeded()],
            "OpsStatus.Operation.Succeeded",
            0,
            "succeeds after several polls",
        ),
        DemoWatch(
            "cache-scale",
            parts("cache-scale"),
            [Step.running(status="Updating", repeat=2), Step.failed(error=QUOTA_ERROR)],
            "OpsStatus.Operation.Failed",
            1,
            "fails with a nested ARM error payload",
        ),
        DemoWatch(
            "cache-delete",
            parts("cache-delete"),
            [
                Step.throttled(retry_after=str(THROTTLE_RETRY_AFTER)),
                Step.running(status="Deleting"),
                Step.succeeded(),
            ],
            "OpsStatus.Operation.Succeeded",
            0,
            f"is throttled first: 429, Retry-After {THROTTLE_RETRY_AFTER} s",
        ),
        DemoWatch(
            "bad-request",
            ["--status-url", "https://evil.example.com/subscriptions/x/operations/1"],
            [],
            "OpsStatus.Watch.Rejected",
            1,
            "is an invalid request (status URL off the ARM host)",
        ),
    ]


class Console:
    """Timestamped lines on a terminal or a pipe; one lock so threads don't interleave."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._start = time.monotonic()
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            self._out.write(f"[{time.monotonic() - self._start:5.1f}s] {text}\n")
            self._out.flush()

    def block(self, text: str) -> None:
        """Lines as they are, without timestamps (a JSON document)."""
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()


@dataclass
class GateResult:
    """What one pipeline saw: its MessageId, its event, its gate's exit code."""

    message_id: str | None = None
    event: dict[str, Any] | None = None
    exit_code: int | None = None
    trace_id: str | None = None
    """The trace id ``submit --json`` printed (None when the request was sent raw)."""


def run_demo(*, time_limit: float = 60.0, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the process exit code."""
    console = Console(out)
    watches = _watches()
    # Where the child processes write their spans (emulators.spans); removed at the end.
    spans = Path(tempfile.mkdtemp(prefix="ops-status-demo-spans-"))
    try:
        return _run(watches, console, spans, time_limit)
    finally:
        shutil.rmtree(spans, ignore_errors=True)


def _run(watches: list[DemoWatch], console: Console, spans: Path, time_limit: float) -> int:
    with LocalStack() as stack:
        for watch in watches:
            if watch.steps:
                stack.arm.script(watch.name, watch.steps)
        console.say(
            f"local stack up: ARM {stack.arm.endpoint}, identity {stack.identity.endpoint}, "
            f"Service Bus {stack.servicebus.fully_qualified_namespace} "
            f"(intake {INTAKE_QUEUE}, polls {POLLS_QUEUE}, topic {EVENTS_TOPIC})"
        )
        worker = WorkerProcess(stack, watches, console, spans=spans)
        try:
            with ThreadPoolExecutor(max_workers=len(watches)) as pool:
                futures = [
                    pool.submit(_pipeline, stack, w, worker, console, time_limit, spans)
                    for w in watches
                ]
                _show_in_flight(stack, console)
                results = {w.name: f.result() for w, f in zip(watches, futures, strict=True)}
        finally:
            worker.stop("the pipelines are done")
        console.say(f"worker stopped (exit code {worker.exit_code}{worker.stop_note})")
    shown = results[SHOWN_IN_FULL].event
    if shown is not None:
        console.say(f"the {SHOWN_IN_FULL} event in full, as its gate's `listen --json` printed it:")
        console.block(json.dumps(shown, indent=2, ensure_ascii=False))
    traced = _show_traces(watches, results, read_spans(spans), console)
    return _summary(watches, results, worker, console, traced)


# -- the pipelines: submit, then a listen gate -------------------------------------------


def _pipeline(
    stack: LocalStack,
    watch: DemoWatch,
    worker: WorkerProcess,
    console: Console,
    time_limit: float,
    spans: Path,
) -> GateResult:
    """What one pipeline does: submit its watch, then wait at a gate for its event."""
    result = GateResult()
    correlation = f"demo-{watch.name}"
    submit = _ops_status(
        stack, "submit", *watch.submit, "--correlation-id", correlation, "--json",
        ServiceBusConnection=stack.pipeline_connection_string,
        # A throwaway stack: nothing to remember for duplicate warnings, no file written.
        OPS_STATUS_SUBMIT_HISTORY="", traced_to=spans,
    )  # fmt: skip
    done = submit.communicate(timeout=time_limit)
    if submit.returncode == 0:
        result.message_id = json.loads(done[0])["messageId"]
        result.trace_id = json.loads(done[0]).get("traceId")
        worker.submitted(
            watch.name, f"submitted {watch.name:<13} MessageId {result.message_id} ({watch.story})"
        )
    else:
        refusal = " ".join(done[1].split()).removeprefix("ops-status: error: ")
        console.say(
            f"submit    {watch.name:<13} refused by the CLI (exit {submit.returncode}): "
            f"{refusal[:160]}"
        )
        result.message_id = _send_raw(stack, watch, correlation)
        worker.submitted(
            watch.name,
            f"submitted {watch.name:<13} raw instead, as a pipeline posting its own message "
            f"could ({watch.story})",
        )
    gate = _ops_status(
        stack, "listen", "--subscription-name", "all", "--submission-id", result.message_id,
        "--json", "--timeout", f"{time_limit:g}",
        # The topic's listen side (in Azure: Data Receiver on the events topic).
        ServiceBusConnection=stack.servicebus.connection_string,
    )  # fmt: skip
    with gate:  # closes its pipes
        assert gate.stdout is not None
        assert gate.stderr is not None
        for line in gate.stdout:
            if line.strip():
                result.event = json.loads(line)
                console.say(_describe_event(watch.name, result.event))
        problem = gate.stderr.read()
    result.exit_code = gate.returncode
    if result.exit_code != watch.expected_exit:
        console.say(f"gate      {watch.name:<13} exit {gate.returncode}: {problem[-300:]}")
    return result


def _ops_status(
    stack: LocalStack, *argv: str, traced_to: Path | None = None, **environment: str
) -> subprocess.Popen[str]:
    """``python -m ops_status ARGV`` as a pipeline step runs it: the step's own environment.
    With ``traced_to``, its spans are written there (``python -m emulators.spans``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPS_STATUS_", "ServiceBusConnection", "IDENTITY_", "MSI_", "AZURE_"))
    }
    env.update(
        OPS_STATUS_INTAKE_QUEUE=INTAKE_QUEUE,
        OPS_STATUS_EVENTS_TOPIC=EVENTS_TOPIC,
        OPS_STATUS_ARM_ENDPOINT=stack.arm.endpoint,
        PYTHONPATH=str(ROOT),
        **environment,
    )
    return subprocess.Popen(
        [*_command(traced_to), *argv],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _show_in_flight(stack: LocalStack, console: Console) -> None:
    """``ops-status ls`` once, while watches wait on the polls queue: an operator's view of
    what is in flight, browsed without taking anything (in Azure: Data Receiver on the
    polls queue)."""
    servicebus = stack.servicebus
    if not servicebus.wait_until(lambda: servicebus.scheduled_count(POLLS_QUEUE) >= 2, 15):
        console.say("ls        skipped: fewer than two watches were in flight at once")
        return
    ls = _ops_status(
        stack, "ls", OPS_STATUS_POLLS_QUEUE=POLLS_QUEUE,
        ServiceBusConnection=stack.servicebus.connection_string,
    )  # fmt: skip
    out, err = ls.communicate(timeout=30)
    console.say(f"ops-status ls (exit {ls.returncode}): in flight on {POLLS_QUEUE}, nothing taken")
    console.block((out.rstrip() or err.strip()) + "\n")


def _send_raw(stack: LocalStack, watch: DemoWatch, correlation: str) -> str:
    """The refused request, sent with the SDK and the same send-only rule."""
    body = {"statusUrl": watch.submit[1], "correlationId": correlation}
    message_id = str(uuid.uuid4())
    with (
        ServiceBusClient.from_connection_string(stack.pipeline_connection_string) as client,
        client.get_queue_sender(INTAKE_QUEUE) as sender,
    ):
        sender.send_messages(
            ServiceBusMessage(
                json.dumps(body), message_id=message_id, content_type="application/json"
            )
        )
    return message_id


# -- the worker, and its progress from its own log lines ---------------------------------


@dataclass
class _WatchProgress:
    throttled: bool = False
    retry_after: float | None = None
    ended: bool = False


@dataclass
class WorkerProcess:
    """``python -m ops_status worker`` on the stack; its stderr log read line by line."""

    stack: LocalStack
    watches: list[DemoWatch]
    console: Console
    honoured: dict[str, bool] = field(default_factory=dict)
    """Per throttled watch: did the next read wait at least the Retry-After?"""
    stop_note: str = ""
    spans: Path | None = None
    """Where the worker writes its spans (None: not recorded)."""

    def __post_init__(self) -> None:
        environment = self.stack.environment(
            OPS_STATUS_POLL_MIN_DELAY="1",
            OPS_STATUS_POLL_MAX_DELAY="3",
            OPS_STATUS_POLL_GROWTH="0.5",
        )
        self._progress = {f"demo-{w.name}": _WatchProgress() for w in self.watches}
        # The worker handles a message while the `submit` that sent it is still closing its
        # connection, so its progress would be shown before the submission it follows:
        # progress about a watch waits here until the pipeline has said it was submitted.
        self._telling = threading.Lock()
        self._submitted: set[str] = set()
        self._held: dict[str, list[str]] = {}
        self._releasing = False
        self._stopping = threading.Lock()
        self._stop_sent = False
        self._process = subprocess.Popen(
            # One process: the spans are recorded by the exporter this process installs
            # (emulators.spans), which spawned worker processes would not inherit.
            [*_command(self.spans), "worker", "--processes", "1", "--concurrency", "4"],
            env={**os.environ, **environment},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(
            target=self._read, args=(self._process.stderr,), name="demo-worker-log", daemon=True
        )
        self._reader.start()
        self.console.say(
            f"worker started (pid {self._process.pid}), poll delays shortened to 1-3 s for the demo"
        )

    @property
    def exit_code(self) -> int | None:
        return self._process.returncode

    def submitted(self, name: str, text: str) -> None:
        """Say that watch ``name`` was submitted, then the progress held back for it."""
        with self._telling:
            self.console.say(text)
            self._submitted.add(name)
            for line in self._held.pop(name, []):
                self.console.say(line)

    def _progress_line(self, name: str, text: str) -> None:
        with self._telling:
            if self._releasing or name in self._submitted:
                self.console.say(text)
            else:
                self._held.setdefault(name, []).append(text)

    def stop(self, why: str) -> None:
        """SIGTERM (once), then wait for the worker to settle and exit."""
        with self._stopping:
            if not self._stop_sent and self._process.poll() is None:
                self._stop_sent = True
                self.console.say(f"stopping the worker (SIGTERM): {why}")
                self._process.send_signal(signal.SIGTERM)
        if threading.current_thread() is self._reader:
            return  # the reader keeps reading until the worker's stderr closes
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)
        with self._telling:
            # A pipeline that failed before saying submitted: its progress is still worth
            # seeing, and so is any line the reader hands over after this (a join that
            # timed out): from here on nothing is held back.
            self._releasing = True
            for lines in self._held.values():
                for line in lines:
                    self.console.say(line)
            self._held.clear()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        with stream:
            for line in stream:
                self._on_line(line.rstrip("\n"))

    def _on_line(self, line: str) -> None:
        # "2026-01-01 12:00:00,000 LEVEL logger event key=value ..." (ops_status.logs)
        parts = line.split(" ", 5)
        if len(parts) < 5 or not parts[3].startswith(("ops_status", "azure")):
            self.console.say(f"worker    | {line}")
            return
        level, event = parts[2], parts[4]
        fields = _fields(parts[5] if len(parts) > 5 else "")
        progress = self._progress.get(fields.get("correlation_id", ""))
        if event == "arm.status_read" and progress is not None:
            progress.throttled = fields.get("http_status") == "429"
            if "retry_after_s" in fields:
                progress.retry_after = float(fields["retry_after_s"])
        elif event == "watch.rescheduled" and progress is not None:
            self._show_poll(fields, progress)
            progress.throttled = False  # good reads log at DEBUG: the next 429 says so again
        elif event in ("watch.finished", "watch.rejected") and progress is not None:
            progress.ended = True
            if all(p.ended for p in self._progress.values()):
                self.stop("its log shows every watch ended")
        elif event == "worker.stopped":
            self.stop_note = f", stopped {fields.get('stop_s', '?')} s after the signal"
        elif level in ("WARNING", "ERROR", "CRITICAL"):
            self.console.say(f"worker    {level} {event} {parts[5] if len(parts) > 5 else ''}")

    def _show_poll(self, fields: dict[str, str], progress: _WatchProgress) -> None:
        name = fields["correlation_id"].removeprefix("demo-")
        delay = float(fields.get("delay_s", "0"))
        if progress.throttled:
            # ARM's Retry-After, from the worker's read log line when it carries it;
            # otherwise what this demo scripted ARM to send.
            retry_after = progress.retry_after or float(THROTTLE_RETRY_AFTER)
            ok = delay >= retry_after
            self.honoured[name] = ok
            verdict = "honoured" if ok else "NOT honoured"
            self._progress_line(
                name,
                f"progress  {name:<13} 429, Retry-After {retry_after:g} s {verdict}: "
                f"next read in {delay:.1f} s",
            )
            return
        failures = fields.get("failures")
        note = f", {failures} failed read(s)" if failures else ""
        self._progress_line(
            name,
            f"progress  {name:<13} status={fields.get('status', '-'):<9} "
            f"polls={fields.get('polls')}  next read in {delay:.1f} s{note}",
        )


def _fields(text: str) -> dict[str, str]:
    """``key=value`` pairs of a log line (values quoted as ``ops_status.logs`` quotes them)."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return {}
    return dict(t.split("=", 1) for t in tokens if "=" in t)


# -- output ----------------------------------------------------------------------------


def _describe_event(name: str, event: dict[str, Any]) -> str:
    data = event.get("data", {})
    line = (
        f"EVENT     {name:<13} {event.get('type')}  polls={data.get('polls', '-')}"
        f"  correlationId={data.get('correlationId')}"
    )
    error = data.get("error")
    if error:
        inner = ", ".join(d.get("code", "?") for d in error.get("details", []))
        line += f"\n          error {error.get('code')}: {error.get('message')}"
        if inner:
            line += f" (details: {inner})"
    if data.get("errors"):
        line += "\n          rejected: " + "; ".join(data["errors"])
    return line


def _command(traced_to: Path | None) -> list[str]:
    """``python -m ops_status``, or through ``emulators.spans`` to record its spans."""
    if traced_to is None:
        return [sys.executable, "-m", "ops_status"]
    return [sys.executable, "-m", "emulators.spans", str(traced_to)]


def _show_traces(
    watches: list[DemoWatch],
    results: dict[str, GateResult],
    spans: list[dict[str, Any]],
    console: Console,
) -> dict[str, bool]:
    """Each watch's trace as a tree; per watch, whether it is one trace from ``submit``
    to the event: the id submit printed is the event's ``traceparent`` trace id, and the
    event was published from one of that trace's spans."""
    from ops_status.traceparent import parse_traceparent

    console.say("traces: each watch's spans (submit and worker processes), as recorded")
    verdicts: dict[str, bool] = {}
    for watch in watches:
        result = results[watch.name]
        published = parse_traceparent((result.event or {}).get("traceparent"))
        if published is None:
            console.say(f"  BAD {watch.name:<13} its event carries no traceparent")
            verdicts[watch.name] = False
            continue
        ids = {s["span_id"] for s in spans if s["trace_id"] == published.trace_id}
        same = result.trace_id in (None, published.trace_id) and published.parent_id in ids
        verdicts[watch.name] = same
        said = (
            "the id submit printed and the event's traceparent"
            if result.trace_id
            else "the event's traceparent (sent raw: no submit span)"
        )
        console.say(
            f"  {'ok ' if same else 'BAD'} {watch.name:<13} trace {published.trace_id} = {said}"
        )
        console.block("\n".join(" " * 10 + line for line in span_tree(spans, published.trace_id)))
    return verdicts


def _summary(
    watches: list[DemoWatch],
    results: dict[str, GateResult],
    worker: WorkerProcess,
    console: Console,
    traced: dict[str, bool],
) -> int:
    console.say("summary (each gate is `ops-status listen`; its exit code is the pipeline's)")
    ok = worker.exit_code == 0
    for watch in watches:
        result = results[watch.name]
        event = result.event or {}
        got = event.get("type", "(no event)")
        polls = event.get("data", {}).get("polls", "-")
        good = got == watch.expected and result.exit_code == watch.expected_exit
        good = good and worker.honoured.get(watch.name, True) and traced.get(watch.name, False)
        ok = ok and good
        meaning = GATE_EXIT.get(result.exit_code, "error") if result.exit_code is not None else "-"
        console.say(
            f"  {'ok ' if good else 'BAD'} {watch.name:<13} {got:<32} polls={polls:<2} "
            f"gate exit {result.exit_code} ({meaning})"
        )
    if not worker.honoured:
        ok = False
        console.say("  BAD the throttled read was never seen in the worker's log")
    console.say(
        "demo passed: every watch ended with exactly the expected event"
        if ok
        else "demo FAILED: see above"
    )
    return 0 if ok else 1
