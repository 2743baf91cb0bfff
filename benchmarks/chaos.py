"""Chaos run: hundreds of watches through the real worker while every boundary misbehaves.

    .venv/bin/python -m benchmarks.chaos --watches 300 --seeds 1,2,3
    .venv/bin/python -m benchmarks.chaos --window-runs 5      # the duplicate-detection window

Starts a ``LocalStack`` (lock duration 3 s, duplicate detection 1 h as the deployment
template sets it), submits ``--watches`` watch requests to the intake queue with mixed
outcomes (succeed, fail with an error payload, cancel, time out, invalid) and runs the
worker (``python -m ops_status worker``'s code path, with the real Service Bus output
client wrapped in a counter: see "What the product tried" below) as a subprocess with
fast polling (1-2 s) while faults are injected at every boundary:

- ARM (scripted per operation): 429 with ``Retry-After``, 500, 503, connection resets,
  read timeouts (a step slower than the read timeout), malformed 200 bodies, 404 for the
  first reads, and slow drips that keep a handler busy longer than the queue's lock
  duration (the worker's lock renewer must keep the lock);
- identity endpoint: failing for 1-3 s (and for 2 or 4 s at some restarts: ``fail_for``)
  and slow (``set_delay``);
- Service Bus: sends refused for 1-3 s (polls queue and topic: the SDK's own retries
  absorb these) and, ``--long-refusals`` times, for 8 s (longer than the SDK's retries:
  the product's send fails, it holds the message for delivery count x
  ``SEND_RETRY_DELAY`` and the host redelivers it); every connection dropped;
- the worker: SIGKILLed mid-run and restarted (``--kills`` times).

Invariants, checked at the end (``ChaosReport.violations``):

- every watch has exactly one terminal event on subscription "all", or sits in a
  dead-letter queue (intake or polls) with a reason; none is lost;
- no duplicate terminal events (per watch, and per event id);
- never more than one *scheduled* poll per operation (sampled every 50 ms; a redelivered
  message plus its already-scheduled follow-up is not a fork: only SCHEDULED counts), and
  no poll MessageId kept twice by the polls queue;
- no polling after a terminal event. Precisely: no poll for an operation is *scheduled*
  (sent to the polls queue) after its terminal event was decided (``data.finishedAt``;
  the sampler notices a new scheduled message within ``SAMPLER_SLACK``). A poll scheduled
  *before* it may still be pending and read once more (a lock lost mid-step: the
  redelivered step finished the watch while the first delivery's follow-up waits).
  Such ARM reads after ``finishedAt`` are counted ("late reads"); they answer terminal
  again, end in a dropped duplicate event, and must stay below the queue's
  MaxDeliveryCount per operation;
- what the broker kept on the topic is what the harness received: one event per watch.

What the product tried. Duplicate detection hides repeats: a step that ran twice sends
twice and the broker keeps one. So the worker's output client is wrapped
(``CountingOutputs``) and every send it is asked for is appended to a file before and
after the call (a SIGKILL loses nothing already tried). The table puts those attempts
beside what the emulator received (``sent_count``, SDK retries included), dropped
(``duplicates_dropped``) and kept, per entity.

The window run (``run_window``, ``--window-runs``): a worker that sends each follow-up and
dies (``os._exit``) before completing, deterministically, then the real worker takes over
the redeliveries. Once with the template's window (1 h) and once with a window shorter
than the redelivery delay (2 s, lock 4 s): the first must drop every repeat, the second
keeps them (a duplicate terminal event, a forked polling chain), which is the hazard a
too-short window creates.

Prints tables of figures; ``run_chaos`` / ``run_window`` return them for the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.arm import Step
from emulators.servicebus import MessageState
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack
from ops_status.events import OutboundMessage
from ops_status.request import parse_watch_request, submission_key
from ops_status.servicebus import Outputs

ROOT = Path(__file__).resolve().parents[1]

LOCK_DURATION = 3.0
MAX_DELIVERY_COUNT = 10
#: The deployment template's duplicate-detection window (PT1H, infra/azuredeploy.json).
DEPLOYED_WINDOW = 3600.0
READ_TIMEOUT = 2.0
CONNECT_TIMEOUT = 3.0
WATCH_TIMEOUT = 8.0
#: Seconds of refused sends in a long refusal: longer than the SDK's retries.
LONG_REFUSAL = 8.0
# How late the sampler may notice a newly scheduled poll (its period plus a busy machine).
SAMPLER_SLACK = 1.0
SETTINGS = {
    "OPS_STATUS_POLL_MIN_DELAY": "1",
    "OPS_STATUS_POLL_MAX_DELAY": "2",
    "OPS_STATUS_POLL_GROWTH": "0.5",
    "OPS_STATUS_RETRY_AFTER_MAX": "2",
    "OPS_STATUS_HTTP_READ_TIMEOUT": f"{READ_TIMEOUT:g}",
    "OPS_STATUS_HTTP_CONNECT_TIMEOUT": f"{CONNECT_TIMEOUT:g}",
    # A failed send holds delivery n for n x 1 s (15 s in production) before the abandon.
    "OPS_STATUS_SEND_RETRY_DELAY": "1",
}
OUTCOMES = ("succeed", "fail", "cancel", "timeout", "invalid")
EXPECTED_TYPE = {
    "succeed": "OpsStatus.Operation.Succeeded",
    "fail": "OpsStatus.Operation.Failed",
    "cancel": "OpsStatus.Operation.Canceled",
    "timeout": "OpsStatus.Operation.TimedOut",
    "invalid": "OpsStatus.Watch.Rejected",
}
ARM_ERROR = {
    "code": "ResourceOperationFailure",
    "message": "The resource operation completed with terminal provisioning state 'Failed'.",
    "details": [{"code": "CapacityNotAvailable", "message": "No capacity in westus."}],
    "additionalInfo": [{"type": "PolicyViolation", "info": {"policy": "chaos"}}],
}
#: The two entities the product sends to, as the tables name them.
ENTITIES = {"polls": POLLS_QUEUE, "topic": EVENTS_TOPIC}


# -- what the product tried: counted at the Outputs seam --------------------------------


class CountingOutputs:
    """The real ``Outputs``, with every send it is asked for appended to ``path``.

    A line ``{entity}\\ttry\\t{message id}`` before the call and ``ok`` or ``fail`` after
    it, written with ``O_APPEND`` straight to the file (no buffer), so a process killed
    mid-run leaves every attempt it made on disk. ``after_send`` runs after a successful
    send (the crashing worker dies there).
    """

    def __init__(
        self,
        inner: Outputs,
        path: Path,
        *,
        after_send: Callable[[str, OutboundMessage], None] | None = None,
    ) -> None:
        self._inner = inner
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._after_send = after_send

    def schedule_poll(self, message: OutboundMessage, enqueue_at: datetime) -> None:
        self._send("polls", message, lambda: self._inner.schedule_poll(message, enqueue_at))

    def send_event(self, message: OutboundMessage) -> None:
        self._send("topic", message, lambda: self._inner.send_event(message))

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
        os.close(self._fd)

    def _send(self, entity: str, message: OutboundMessage, send: Callable[[], None]) -> None:
        self._record(entity, "try", message.message_id)
        try:
            send()
        except BaseException:
            self._record(entity, "fail", message.message_id)
            raise
        self._record(entity, "ok", message.message_id)
        if self._after_send is not None:
            self._after_send(entity, message)

    def _record(self, entity: str, what: str, message_id: str) -> None:
        os.write(self._fd, f"{entity}\t{what}\t{message_id}\n".encode())


@dataclass
class SeamCounts:
    """What the product asked its output client to send, per entity ("polls", "topic")."""

    tried: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def read(cls, path: Path) -> SeamCounts:
        counts = cls()
        if not path.exists():
            return counts
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue  # a line cut by a kill
            entity, what, message_id = parts
            {"try": counts.tried, "ok": counts.ok, "fail": counts.failed}[what][entity] += 1
            if what == "try":
                counts.ids[entity].add(message_id)
        return counts

    def distinct(self, entity: str) -> int:
        return len(self.ids.get(entity, ()))


@dataclass
class EntitySends:
    """Attempted vs kept, for one entity the product sends to."""

    tried: int
    """Sends the product asked for (``CountingOutputs``), repeats included."""
    ok: int
    failed: int
    distinct_ids: int
    """Different MessageIds among them: what duplicate detection should reduce them to."""
    received: int
    """Messages the broker accepted (SDK retries of an unacknowledged send included)."""
    dropped: int
    """Dropped as duplicates by the broker."""
    kept_twice: int
    """MessageIds the broker kept more than once (a repeat outside the window)."""

    @property
    def kept(self) -> int:
        return self.received - self.dropped


def entity_sends(
    stack: LocalStack, seam: SeamCounts, kept_twice: dict[str, int]
) -> dict[str, EntitySends]:
    return {
        name: EntitySends(
            tried=seam.tried[name],
            ok=seam.ok[name],
            failed=seam.failed[name],
            distinct_ids=seam.distinct(name),
            received=stack.servicebus.sent_count(entity),
            dropped=stack.servicebus.duplicates_dropped(entity),
            kept_twice=kept_twice.get(name, 0),
        )
        for name, entity in ENTITIES.items()
    }


def sends_table(sends: dict[str, EntitySends]) -> str:
    header = (
        "| entity | tried (Outputs) | ok / failed at the seam | distinct MessageIds "
        "| received by the broker | duplicates dropped | kept | MessageIds kept twice |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    names = {"polls": f"polls queue ({POLLS_QUEUE})", "topic": f"topic ({EVENTS_TOPIC})"}
    for name, s in sends.items():
        lines.append(
            f"| {names[name]} | {s.tried} | {s.ok} / {s.failed} | {s.distinct_ids} | "
            f"{s.received} | {s.dropped} | {s.kept} | {s.kept_twice} |"
        )
    return "\n".join(lines)


# -- the plan -------------------------------------------------------------------------


def _arm_faults() -> dict[str, Callable[[], Step]]:
    return {
        "arm_429": lambda: Step.throttled(retry_after="1"),
        "arm_500": lambda: Step.server_error(500),
        "arm_503": lambda: Step.server_error(503, retry_after="1"),
        "arm_reset": Step.dropped,
        "arm_read_timeout": lambda: Step.running().replace(delay=READ_TIMEOUT + 1.0),
        "arm_malformed": Step.malformed,
        # ~26 pieces of 16 bytes, 0.15 s apart: ~4 s, longer than the 3 s lock but inside
        # the client's overall deadline (connect + read timeout): the lock must be renewed.
        "arm_slow_handler": lambda: Step.running().replace(drip=0.15),
    }


@dataclass
class Watch:
    index: int
    outcome: str
    correlation_id: str
    operation_id: str | None
    body: bytes
    message_id: str
    steps: list[Step] = field(default_factory=list)


def plan_watches(
    count: int, rng: random.Random, arm_endpoint: str
) -> tuple[list[Watch], Counter[str]]:
    faults = _arm_faults()
    injected: Counter[str] = Counter()
    watches = []
    weights = [30, 20, 15, 10, 25] if count >= 20 else [1, 1, 1, 1, 1]
    for i in range(count):
        outcome = OUTCOMES[i] if i < len(OUTCOMES) else rng.choices(OUTCOMES, weights)[0]
        correlation_id = f"chaos-{i}"
        if outcome == "invalid":
            body = rng.choice(
                [
                    json.dumps(
                        {
                            "statusUrl": f"https://evil.example/x/{i}",
                            "correlationId": correlation_id,
                        }
                    ),
                    json.dumps(
                        {
                            "subscriptionId": f"not-a-guid-{i}",
                            "location": "westus",
                            "operationId": "x",
                            "correlationId": correlation_id,
                        }
                    ),
                    json.dumps({"correlationId": correlation_id, "operationId": "../../x"}),
                ]
            ).encode()
            watches.append(Watch(i, outcome, correlation_id, None, body, f"invalid-{i}"))
            continue
        operation_id = f"chaos-op-{i}"
        document: dict[str, Any] = {
            "subscriptionId": f"{rng.getrandbits(32):08x}-0000-4000-8000-{i:012x}",
            "location": rng.choice(["westus", "West Europe", "eastus2"]),
            "operationId": operation_id,
            "correlationId": correlation_id,
            "context": {"run": i},
        }
        if outcome == "timeout":
            document["timeout"] = WATCH_TIMEOUT
        body = json.dumps(document).encode()
        # The MessageId `ops-status submit` gives a submission (a pipeline may choose any).
        message_id = submission_key(parse_watch_request(body, arm_endpoint=arm_endpoint))
        steps: list[Step] = []
        if rng.random() < 0.25:
            repeat = rng.randint(1, 2)
            steps.append(Step.not_found(repeat=repeat))
            injected["arm_404_at_start"] += repeat
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                kind = rng.choice(sorted(faults))
                steps.append(faults[kind]())
                injected[kind] += 1
            steps.append(Step.running(repeat=rng.randint(1, 2)))
        if outcome == "succeed":
            steps.append(Step.succeeded())
        elif outcome == "fail":
            steps.append(Step.failed(error=ARM_ERROR))
        elif outcome == "cancel":
            steps.append(Step.canceled())
        else:
            steps.append(Step.running())  # forever: the watch's own timeout ends it
        watches.append(Watch(i, outcome, correlation_id, operation_id, body, message_id, steps))
    return watches, injected


# -- the harness's instruments ----------------------------------------------------------


class _Sampler:
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


class _Worker:
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
    """The child's side of ``_Worker``: the CLI's worker, with counted outputs."""
    from ops_status import cli
    from ops_status.bootstrap import build_dependencies, set_dependencies
    from ops_status.settings import load_settings

    real = build_dependencies(load_settings())
    set_dependencies(dataclasses.replace(real, outputs=CountingOutputs(real.outputs, attempts)))
    return cli.main(["worker", "--concurrency", str(concurrency)])


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


def _environment(stack: LocalStack, **extra: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "IDENTITY_SERVER_THUMBPRINT")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection"))
    }
    environment.update(stack.environment(identity_based=True, **{**SETTINGS, **extra}))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _submit(client: ServiceBusClient, watches: Sequence[Watch]) -> None:
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


def _dead_letters(stack: LocalStack) -> list[Any]:
    return [
        m for queue in (INTAKE_QUEUE, POLLS_QUEUE) for m in stack.servicebus.dead_letters(queue)
    ]


def _queues_left(stack: LocalStack) -> int:
    bus = stack.servicebus
    return sum(bus.active_count(q) + bus.scheduled_count(q) for q in (INTAKE_QUEUE, POLLS_QUEUE))


class _EventCollector:
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


# -- the chaos run ------------------------------------------------------------------------


@dataclass
class ChaosReport:
    watches: int
    outcomes: Counter[str]
    faults: Counter[str]
    terminal_events: int
    dead_lettered: int
    dead_letter_reasons: Counter[str]
    lost: list[str]
    duplicates: int
    duplicate_ids: int
    forks: int
    most_scheduled: int
    scheduled_after_terminal: list[str]
    late_reads: int
    late_reads_max: int
    wrong_outcome: Counter[str]
    arm_reads_mean: float
    arm_reads_max: int
    wall_time: float
    worker_log_counts: Counter[str]
    queue_left: int
    duplicates_dropped: dict[str, int]
    log_path: str
    sends: dict[str, EntitySends] = field(default_factory=dict)
    dead_lettered_by_queue: dict[str, int] = field(default_factory=dict)
    events_per_watch: Counter[int] = field(default_factory=Counter)
    seed: int = 0

    @property
    def violations(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} watches lost: {self.lost[:5]}")
        if self.duplicates or self.duplicate_ids:
            found.append(f"{self.duplicates} duplicate events ({self.duplicate_ids} by id)")
        if self.forks:
            found.append(f"{self.forks} operations had more than one scheduled poll")
        polls = self.sends.get("polls")
        if polls is not None and polls.kept_twice:
            found.append(f"{polls.kept_twice} poll MessageIds kept twice by the polls queue")
        topic = self.sends.get("topic")
        if topic is not None and topic.kept != self.terminal_events:
            found.append(
                f"the topic kept {topic.kept} events but the harness received "
                f"{self.terminal_events}"
            )
        if self.scheduled_after_terminal:
            found.append(
                f"scheduled polls after the terminal event: {self.scheduled_after_terminal}"
            )
        if self.late_reads_max >= MAX_DELIVERY_COUNT:
            found.append(f"up to {self.late_reads_max} ARM reads after a terminal event")
        if self.queue_left:
            found.append(f"{self.queue_left} messages left on the queues")
        return found

    def figures(self) -> dict[str, float]:
        """The numeric figures, for min/median/max over several seeds."""
        out: dict[str, float] = {
            "faults injected": sum(self.faults.values()),
            "terminal events": self.terminal_events,
            "dead-lettered": self.dead_lettered,
            "lost": len(self.lost),
            "duplicate terminal events": self.duplicates,
            "forks (>1 scheduled poll)": self.forks,
            "polls scheduled after terminal": len(self.scheduled_after_terminal),
            "ARM reads after terminal": self.late_reads,
            "ARM reads per watch (mean)": self.arm_reads_mean,
            "wall time (s)": self.wall_time,
        }
        for name, s in self.sends.items():
            out[f"{name}: tried"] = s.tried
            out[f"{name}: failed at the seam"] = s.failed
            out[f"{name}: distinct MessageIds"] = s.distinct_ids
            out[f"{name}: received by the broker"] = s.received
            out[f"{name}: duplicates dropped"] = s.dropped
            out[f"{name}: kept"] = s.kept
            out[f"{name}: kept twice"] = s.kept_twice
        return out

    def table(self) -> str:
        rows = [
            ("watches", f"{self.watches} ({_fmt(self.outcomes)})"),
            ("faults injected", f"{sum(self.faults.values())}"),
            *((f"&nbsp;&nbsp;{kind}", str(n)) for kind, n in sorted(self.faults.items())),
            ("terminal events", str(self.terminal_events)),
            (
                "events per watch",
                ", ".join(
                    f"{n} event{'s' if n != 1 else ''}: {c} watches"
                    for n, c in sorted(self.events_per_watch.items())
                ),
            ),
            (
                "dead-lettered",
                f"{self.dead_lettered} ({_fmt(Counter(self.dead_lettered_by_queue))}; "
                f"{_fmt(self.dead_letter_reasons)})",
            ),
            ("lost", str(len(self.lost))),
            ("duplicate terminal events", f"{self.duplicates} (by event id: {self.duplicate_ids})"),
            (
                "forks (>1 scheduled poll)",
                f"{self.forks} (most seen at once: {self.most_scheduled})",
            ),
            ("polls scheduled after terminal", str(len(self.scheduled_after_terminal))),
            ("ARM reads after terminal", f"{self.late_reads} (max per op {self.late_reads_max})"),
            (
                "outcome differs from script",
                f"{sum(self.wrong_outcome.values())} {_fmt(self.wrong_outcome)}",
            ),
            ("ARM reads per watch", f"mean {self.arm_reads_mean:.1f}, max {self.arm_reads_max}"),
            ("duplicates dropped by SB", _fmt(Counter(self.duplicates_dropped))),
            ("worker log lines", _fmt(self.worker_log_counts)),
            ("left on the queues", str(self.queue_left)),
            ("wall time", f"{self.wall_time:.1f} s"),
        ]
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines) + "\n\n" + sends_table(self.sends)


def _fmt(counter: Counter[Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"


def run_chaos(
    watches: int = 300,
    seed: int = 1,
    *,
    kills: int = 4,
    long_refusals: int = 2,
    concurrency: int = 16,
    time_limit: float | None = None,
    log_path: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> ChaosReport:
    rng = random.Random(seed)
    started = time.monotonic()
    time_limit = time_limit or max(150.0, watches * 1.2)
    log_path = log_path or Path(f"/tmp/ops-status-chaos-{os.getpid()}.log")
    log_path.unlink(missing_ok=True)
    attempts = log_path.with_suffix(".sends")
    attempts.unlink(missing_ok=True)
    faults: Counter[str] = Counter()
    with LocalStack(
        lock_duration=LOCK_DURATION,
        max_delivery_count=MAX_DELIVERY_COUNT,
        duplicate_detection_window=DEPLOYED_WINDOW,
    ) as stack:
        plan, arm_faults = plan_watches(watches, rng, stack.arm.endpoint)
        faults.update(arm_faults)
        by_correlation = {w.correlation_id: w for w in plan}
        for w in plan:
            if w.operation_id:
                stack.arm.script(w.operation_id, w.steps)
        client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
        # What a pipeline holds: Send on the intake queue, nothing else.
        pipeline = ServiceBusClient.from_connection_string(stack.pipeline_connection_string)
        worker = _Worker(_environment(stack), log_path, concurrency, attempts)
        sampler = _Sampler(stack)
        collector = _EventCollector()
        stop_chaos = threading.Event()
        kill_times = sorted(rng.uniform(3.0, min(40.0, time_limit / 3)) for _ in range(kills))
        # Early, while every watch is still polling, so sends are really refused.
        long_refusal_times = sorted(rng.uniform(3.0, 15.0) for _ in range(long_refusals))

        def monkey() -> None:
            """Service Bus and identity faults, and worker kills, at seeded times."""
            local = random.Random(seed + 1)
            begin = time.monotonic()
            pending_kills = list(kill_times)
            pending_refusals = list(long_refusal_times)
            while not stop_chaos.wait(local.uniform(1.0, 3.0)):
                if pending_refusals and time.monotonic() - begin >= pending_refusals[0]:
                    pending_refusals.pop(0)
                    # Longer than the SDK's retries (0.8 + 1.6 + 3.2 s): the send fails.
                    name, entity = (
                        ("polls", POLLS_QUEUE)
                        if len(pending_refusals) % 2 == 0
                        else ("topic", EVENTS_TOPIC)
                    )
                    stack.servicebus.refuse_sends(entity, for_seconds=LONG_REFUSAL)
                    faults[f"sb_refuse_{name}_long"] += 1
                    progress(f"  refused sends to {entity} for {LONG_REFUSAL:g} s")
                    continue
                if pending_kills and time.monotonic() - begin >= pending_kills[0]:
                    pending_kills.pop(0)
                    worker.kill()
                    faults["worker_sigkill"] += 1
                    progress(f"  killed the worker at {time.monotonic() - begin:.1f} s")
                    if local.random() < 0.5:
                        # An outage of a duration: a count of failures would outlast any
                        # length of time against a client that asks once per msal replay.
                        stack.identity.fail_for(local.choice([2.0, 4.0]), 500)
                        faults["identity_failing"] += 1
                    stop_chaos.wait(local.uniform(0.5, 1.5))
                    worker.start()
                    continue
                choice = local.choice(
                    [
                        "refuse_queue",
                        "refuse_topic",
                        "drop_connections",
                        "identity_slow",
                        "identity_fail",
                    ]
                )
                faults[f"sb_{choice}" if not choice.startswith("identity") else choice] += 1
                progress(f"  {choice} at {time.monotonic() - begin:.1f} s")
                if choice == "refuse_queue":
                    stack.servicebus.refuse_sends(POLLS_QUEUE, for_seconds=local.uniform(1, 3))
                elif choice == "refuse_topic":
                    stack.servicebus.refuse_sends(EVENTS_TOPIC, for_seconds=local.uniform(1, 3))
                elif choice == "drop_connections":
                    stack.servicebus.drop_connections()
                elif choice == "identity_slow":
                    stack.identity.set_delay(1.5)
                    stop_chaos.wait(3.0)
                    stack.identity.set_delay(0)
                else:
                    stack.identity.fail_for(local.uniform(1.0, 3.0), 503)

        chaos = threading.Thread(target=monkey, daemon=True, name="chaos-monkey")
        accounted_at: float | None = None
        last_report = time.monotonic()

        def finished() -> bool:
            """Every watch accounted for, then a quiet period for strays (duplicates)."""
            nonlocal accounted_at, last_report
            dead = {_correlation(m.body) for m in _dead_letters(stack)}
            done = sum(1 for c in by_correlation if c in collector.by_watch or c in dead)
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                progress(
                    f"  {done}/{len(plan)} accounted for after {time.monotonic() - started:.0f} s"
                )
            if done == len(plan) and accounted_at is None:
                accounted_at = time.monotonic()
                stop_chaos.set()
            return accounted_at is not None and time.monotonic() - accounted_at > 4

        try:
            _submit(pipeline, plan)
            progress(f"submitted {len(plan)} watches")
            sampler.start()
            worker.start()
            chaos.start()
            collector.run(client, finished, started + time_limit)
            stop_chaos.set()
            chaos.join(timeout=15)
            stack.identity.set_delay(0)
            if worker.process is None or worker.process.poll() is not None:
                worker.start()  # a kill may have been the last thing the monkey did
            # Strays may still be in flight: a killed worker's lock has to expire, and a
            # redelivered step that would have given up schedules one more poll instead.
            stack.servicebus.wait_until(lambda: _queues_left(stack) == 0, timeout=30)
        finally:
            stop_chaos.set()
            worker.stop()
            sampler.stop()
            client.close()
            pipeline.close()
        wall = time.monotonic() - started
        dead_letters = _dead_letters(stack)
        dead_by_queue = {
            "intake": stack.servicebus.dead_letter_count(INTAKE_QUEUE),
            "polls": stack.servicebus.dead_letter_count(POLLS_QUEUE),
        }
        queue_left = _queues_left(stack)
        duplicates_dropped = {
            "polls": stack.servicebus.duplicates_dropped(POLLS_QUEUE),
            "topic": stack.servicebus.duplicates_dropped(EVENTS_TOPIC),
        }
        sends = entity_sends(
            stack,
            SeamCounts.read(attempts),
            {"polls": sampler.kept_twice, "topic": collector.kept_twice},
        )
        arm_requests = stack.arm.requests
    # The SDK leaves the sockets of connections the emulator dropped for the garbage
    # collector (ResourceWarning): collect them here, inside the run, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

    report = _report(
        plan,
        collector.by_watch,
        collector.event_ids,
        dead_letters,
        arm_requests,
        sampler,
        faults,
        wall,
        log_path,
        queue_left,
        duplicates_dropped,
    )
    report.sends = sends
    report.dead_lettered_by_queue = dead_by_queue
    report.seed = seed
    return report


def _correlation(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("correlationId")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _report(
    plan: list[Watch],
    events: dict[str, list[dict[str, Any]]],
    event_ids: Counter[str],
    dead_letters: list[Any],
    arm_requests: list[Any],
    sampler: _Sampler,
    faults: Counter[str],
    wall: float,
    log_path: Path,
    queue_left: int,
    duplicates_dropped: dict[str, int],
) -> ChaosReport:
    dead_reasons: Counter[str] = Counter()
    dead_by_correlation: set[str] = set()
    for message in dead_letters:
        dead_reasons[message.dead_letter_reason or "(no reason)"] += 1
        correlation = _correlation(message.body)
        if correlation and message.dead_letter_reason:
            dead_by_correlation.add(correlation)
    reads: dict[str, list[float]] = defaultdict(list)
    for request in arm_requests:
        if request.operation_id:
            reads[request.operation_id].append(request.received_at)
    lost, wrong = [], Counter[str]()
    late_total, late_max = 0, 0
    scheduled_after: list[str] = []
    for watch in plan:
        got = events.get(watch.correlation_id, [])
        if not got and watch.correlation_id not in dead_by_correlation:
            lost.append(watch.correlation_id)
        if got and got[0]["type"] != EXPECTED_TYPE[watch.outcome]:
            reason = got[0]["data"].get("reason") or got[0]["type"].rsplit(".", 1)[-1]
            wrong[f"{watch.outcome}->{reason}"] += 1
        if got and watch.operation_id:
            finished = datetime.fromisoformat(got[0]["data"]["finishedAt"].replace("Z", "+00:00"))
            finished_at = finished.timestamp()
            late = sum(1 for t in reads[watch.operation_id] if t > finished_at + 0.5)
            late_total += late
            late_max = max(late_max, late)
            seen = sampler.last_scheduled.get(watch.operation_id)
            if seen is not None and seen > finished_at + SAMPLER_SLACK:
                scheduled_after.append(watch.operation_id)
    per_watch = [len(reads[w.operation_id]) for w in plan if w.operation_id]
    return ChaosReport(
        watches=len(plan),
        outcomes=Counter(w.outcome for w in plan),
        faults=faults,
        terminal_events=sum(len(v) for v in events.values()),
        dead_lettered=len(dead_letters),
        dead_letter_reasons=dead_reasons,
        lost=lost,
        duplicates=sum(len(v) - 1 for v in events.values() if len(v) > 1),
        duplicate_ids=sum(n - 1 for n in event_ids.values() if n > 1),
        forks=sum(1 for n in sampler.most.values() if n > 1),
        most_scheduled=max(sampler.most.values(), default=0),
        scheduled_after_terminal=scheduled_after,
        late_reads=late_total,
        late_reads_max=late_max,
        wrong_outcome=wrong,
        arm_reads_mean=sum(per_watch) / len(per_watch) if per_watch else 0.0,
        arm_reads_max=max(per_watch, default=0),
        wall_time=wall,
        worker_log_counts=_log_counts(log_path),
        queue_left=queue_left,
        duplicates_dropped=duplicates_dropped,
        log_path=str(log_path),
        events_per_watch=Counter(len(events.get(w.correlation_id, [])) for w in plan),
    )


def _log_counts(log_path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            for marker in (
                "worker.abandoning",
                "worker.settle_failed",
                "worker.receiver_failed",
                "servicebus.send_failed",
                "watch.send_failed_waiting",
                "watch.finished",
                "watch.rejected",
                "Traceback",
            ):
                if marker in line:
                    counts[marker] += 1
    return counts


# -- the window run: a deterministic kill between send and complete -----------------------

#: Lock duration of the window run: the redelivery delay after a crash.
WINDOW_LOCK = 4.0
#: Shorter than the redelivery delay: a repeat after a crash falls outside it.
SHORT_WINDOW = 2.0
WINDOW_KINDS = ("event", "fork")


@dataclass
class WindowReport:
    """One window run: every step's follow-up sent, the worker dead before completing."""

    window: float
    lock_duration: float
    kinds: dict[str, str]
    """correlationId -> "event" (the killed step published the terminal event) or "fork"
    (the killed step scheduled the next poll)."""
    crash_exit: int | None
    sends: dict[str, EntitySends]
    events_per_watch: dict[str, int]
    redelivered_steps: int
    """Steps the worker ran on a redelivered intake message (delivery count 2)."""
    dead_lettered: int
    arm_reads: int
    left: int
    wall_time: float
    log_path: str

    @property
    def duplicate_events(self) -> int:
        return sum(n - 1 for n in self.events_per_watch.values() if n > 1)

    @property
    def forked_watches(self) -> int:
        """Watches whose first poll MessageId the polls queue kept twice (two chains)."""
        return self.sends["polls"].kept_twice

    @property
    def hazard(self) -> bool:
        return self.duplicate_events > 0 or self.forked_watches > 0

    def figures(self) -> dict[str, float]:
        polls, topic = self.sends["polls"], self.sends["topic"]
        return {
            "polls: tried": polls.tried,
            "polls: distinct MessageIds": polls.distinct_ids,
            "polls: duplicates dropped": polls.dropped,
            "polls: kept": polls.kept,
            "polls: kept twice (forked chains)": polls.kept_twice,
            "topic: tried": topic.tried,
            "topic: distinct MessageIds": topic.distinct_ids,
            "topic: duplicates dropped": topic.dropped,
            "topic: kept": topic.kept,
            "duplicate terminal events": self.duplicate_events,
            "steps redelivered after the kill": self.redelivered_steps,
            "dead-lettered": self.dead_lettered,
            "ARM reads": self.arm_reads,
            "wall time (s)": self.wall_time,
        }

    def problems(self, *, expect_hazard: bool) -> list[str]:
        """What is wrong with this run, given whether its window should show the hazard."""
        found = []
        watches = len(self.kinds)
        if self.crash_exit != 137:
            found.append(f"the crashing worker exited with {self.crash_exit}, not 137")
        if self.redelivered_steps < watches:
            found.append(f"only {self.redelivered_steps} of {watches} steps were redelivered")
        if any(n == 0 for n in self.events_per_watch.values()):
            found.append(f"a watch got no event: {self.events_per_watch}")
        if self.dead_lettered or self.left:
            found.append(f"{self.dead_lettered} dead-lettered, {self.left} left on the queues")
        events = sum(1 for k in self.kinds.values() if k == "event")
        forks = watches - events
        if expect_hazard:
            if self.duplicate_events < events:
                found.append(f"{self.duplicate_events} duplicate events kept; expected >= {events}")
            if self.forked_watches < forks:
                found.append(f"{self.forked_watches} forked chains kept; expected >= {forks}")
        else:
            if self.hazard:
                found.append(
                    f"{self.duplicate_events} duplicate events and {self.forked_watches} forks "
                    f"kept inside a {self.window:g} s window"
                )
            if self.sends["topic"].dropped < events or self.sends["polls"].dropped < forks:
                found.append("the repeated sends were not dropped as duplicates")
        return found


def run_window(
    window: float,
    *,
    lock_duration: float = WINDOW_LOCK,
    per_kind: int = 1,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> WindowReport:
    """Kill a worker between send and complete on ``2 x per_kind`` watches, let the real
    worker take the redeliveries, and count what the broker kept with ``window``."""
    started = time.monotonic()
    log_path = log_path or Path(f"/tmp/ops-status-window-{os.getpid()}-{window:g}.log")
    log_path.unlink(missing_ok=True)
    attempts = log_path.with_suffix(".sends")
    attempts.unlink(missing_ok=True)
    with LocalStack(
        lock_duration=lock_duration,
        max_delivery_count=MAX_DELIVERY_COUNT,
        duplicate_detection_window=window,
    ) as stack:
        kinds: dict[str, str] = {}
        plan = []
        for i in range(per_kind):
            for kind in WINDOW_KINDS:
                operation = f"window-{kind}-{i}"
                if kind == "event":
                    steps = [Step.succeeded()]  # the killed step publishes the event
                else:
                    # Still running when the redelivered step reads (about one lock
                    # period after the first read), so it schedules the first poll again.
                    steps = [Step.running(for_seconds=lock_duration + 0.5), Step.succeeded()]
                stack.arm.script(operation, steps)
                body = json.dumps(
                    {
                        "subscriptionId": "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f",
                        "location": "westus",
                        "operationId": operation,
                        "correlationId": operation,
                    }
                ).encode()
                message_id = submission_key(parse_watch_request(body, arm_endpoint=ARM_ANY))
                plan.append(Watch(i, kind, operation, operation, body, message_id, steps))
                kinds[operation] = kind
        environment = _environment(stack)
        client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
        sampler = _Sampler(stack)
        collector = _EventCollector()
        worker = _Worker(environment, log_path, 4, attempts)
        crash_exit: int | None = None
        settled_at: float | None = None

        def settled() -> bool:
            nonlocal settled_at
            if settled_at is None:
                if all(k in collector.by_watch for k in kinds) and _queues_left(stack) == 0:
                    settled_at = time.monotonic()
                return False
            return time.monotonic() - settled_at > 0.5  # strays

        try:
            sampler.start()
            with log_path.open("ab") as log:
                # Started before the submissions, so its start-up overlaps theirs.
                crasher = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.chaos",
                        "--crash-after-sends",
                        str(len(plan)),
                        "--attempts",
                        str(attempts),
                    ],
                    env=environment,
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                )
                with ServiceBusClient.from_connection_string(
                    stack.pipeline_connection_string
                ) as pipeline:
                    _submit(pipeline, plan)
                try:
                    crash_exit = crasher.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    crasher.kill()
                    crasher.wait(timeout=10)
            worker.start()
            collector.run(client, settled, started + timeout)
        finally:
            # Everything has settled (or the run timed out): nothing in flight to finish.
            worker.stop(graceful=False)
            sampler.stop()
            client.close()
        sends = entity_sends(
            stack,
            SeamCounts.read(attempts),
            {"polls": sampler.kept_twice, "topic": collector.kept_twice},
        )
        dead = len(_dead_letters(stack))
        left = _queues_left(stack)
        arm_reads = sum(1 for r in stack.arm.requests if r.operation_id in kinds)
    redelivered = sum(
        1
        for line in log_path.read_text(errors="replace").splitlines()
        if "delivery_count=2" in line and ("watch.finished" in line or "watch.rescheduled" in line)
    )
    return WindowReport(
        window=window,
        lock_duration=lock_duration,
        kinds=kinds,
        crash_exit=crash_exit,
        sends=sends,
        events_per_watch={k: len(collector.by_watch.get(k, [])) for k in kinds},
        redelivered_steps=redelivered,
        dead_lettered=dead,
        arm_reads=arm_reads,
        left=left,
        wall_time=time.monotonic() - started,
        log_path=str(log_path),
    )


#: parse_watch_request needs an endpoint only to check a statusUrl; parts-based bodies
#: do not depend on it, and submission_key does not include it.
ARM_ANY = "http://127.0.0.1:1"


def run_windows(
    windows: Sequence[float] = (DEPLOYED_WINDOW, SHORT_WINDOW),
    *,
    lock_duration: float = WINDOW_LOCK,
    per_kind: int = 1,
    log_dir: Path | None = None,
) -> list[WindowReport]:
    """``run_window`` for each window, all at once (each on its own stack and processes)."""
    results: dict[float, WindowReport] = {}
    errors: list[BaseException] = []

    def one(window: float) -> None:
        try:
            log = (log_dir / f"window-{window:g}.log") if log_dir else None
            results[window] = run_window(
                window, lock_duration=lock_duration, per_kind=per_kind, log_path=log
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(w,), name=f"window-{w:g}") for w in windows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[w] for w in windows]


def window_table(reports: Sequence[WindowReport]) -> str:
    lines = [
        "| window | lock | watches | polls: tried / distinct / dropped / kept / kept twice "
        "| topic: tried / distinct / dropped / kept | duplicate terminal events "
        "| forked chains | redelivered steps | dead-lettered | events per watch | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        p, t = r.sends["polls"], r.sends["topic"]
        per_watch = ", ".join(f"{r.kinds[k]} {n}" for k, n in sorted(r.events_per_watch.items()))
        lines.append(
            f"| {r.window:g} s | {r.lock_duration:g} s | {len(r.kinds)} | "
            f"{p.tried} / {p.distinct_ids} / {p.dropped} / {p.kept} / {p.kept_twice} | "
            f"{t.tried} / {t.distinct_ids} / {t.dropped} / {t.kept} | {r.duplicate_events} | "
            f"{r.forked_watches} | {r.redelivered_steps} | {r.dead_lettered} | {per_watch} | "
            f"{r.wall_time:.1f} s |"
        )
    return "\n".join(lines)


# -- reporting ------------------------------------------------------------------------------


def summary_table(runs: Sequence[dict[str, float]], label: str) -> str:
    """min / median / max of every figure over ``runs``."""
    lines = [f"| {label} | min | median | max |", "|---|---|---|---|"]
    for name in runs[0]:
        values = [run[name] for run in runs]
        cells = [_number(v) for v in (min(values), statistics.median(values), max(values))]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as ``uptime`` prints them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--watches", type=int, default=300)
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="one seed (as --seeds N)")
    parser.add_argument("--kills", type=int, default=4, help="worker SIGKILLs (default 4)")
    parser.add_argument(
        "--long-refusals", type=int, default=2, help="8 s send refusals (default 2)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default scales)")
    parser.add_argument(
        "--scenario", choices=["chaos", "window", "all"], default="chaos", help="what to run"
    )
    parser.add_argument("--window-runs", type=int, default=3, help="repeats of the window run")
    parser.add_argument("--window-lock", type=float, default=WINDOW_LOCK)
    parser.add_argument("--short-window", type=float, default=SHORT_WINDOW)
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--crash-after-sends", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--attempts", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_worker:
        return serve_worker(args.attempts, args.concurrency)
    if args.crash_after_sends is not None:
        return crash_after_sends(args.attempts, args.crash_after_sends)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    failed = False
    print(f"machine: {machine()}; load before: {load()}")
    if args.scenario in ("chaos", "all"):
        seeds = [args.seed] if args.seed is not None else [int(s) for s in args.seeds.split(",")]
        reports = []
        for seed in seeds:
            report = run_chaos(
                args.watches,
                seed,
                kills=args.kills,
                long_refusals=args.long_refusals,
                concurrency=args.concurrency,
                time_limit=args.time_limit,
                progress=say,
            )
            reports.append(report)
            print(f"\nchaos run: seed {seed}, {args.watches} watches, load after: {load()}")
            print(report.table())
            print(f"worker log: {report.log_path}")
            if report.violations:
                failed = True
                print("INVARIANTS VIOLATED:")
                for violation in report.violations:
                    print(f"- {violation}")
            else:
                print("all invariants hold")
        if len(reports) > 1:
            print(f"\nchaos runs: seeds {','.join(map(str, seeds))}")
            print(summary_table([r.figures() for r in reports], "figure"))
    if args.scenario in ("window", "all"):
        windows = (DEPLOYED_WINDOW, args.short_window)
        by_window: dict[float, list[WindowReport]] = defaultdict(list)
        for n in range(args.window_runs):
            for report in run_windows(windows, lock_duration=args.window_lock):
                by_window[report.window].append(report)
            say(f"  window run {n + 1}/{args.window_runs} done")
        print(
            f"\nwindow runs: lock {args.window_lock:g} s, MaxDeliveryCount {MAX_DELIVERY_COUNT}, "
            f"{args.window_runs} runs per window, load after: {load()}"
        )
        print(window_table([r for w in windows for r in by_window[w]]))
        for window in windows:
            runs = by_window[window]
            print(f"\nwindow {window:g} s ({len(runs)} runs)")
            print(summary_table([r.figures() for r in runs], "figure"))
            expect = window < args.window_lock
            for r in runs:
                for problem in r.problems(expect_hazard=expect):
                    failed = True
                    print(f"- PROBLEM ({window:g} s window): {problem}")
        print(
            "\nexpected: no repeat kept inside the 1 h window; with a window shorter than the "
            "lock duration, a repeat that comes a lock period later is kept (a duplicate "
            "terminal event, a forked chain)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
