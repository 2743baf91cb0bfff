"""Chaos run: hundreds of watches through the real worker while every boundary misbehaves.

    .venv/bin/python -m benchmarks.chaos --watches 300 --seed 1

Starts a ``LocalStack`` (lock duration 3 s), submits ``--watches`` watch requests with
mixed outcomes (succeed, fail with an error payload, cancel, time out, invalid) and runs
``python -m ops_status worker`` as a subprocess with fast polling (1-2 s) while faults are
injected at every boundary:

- ARM (scripted per operation): 429 with ``Retry-After``, 500, 503, connection resets,
  read timeouts (a step slower than the read timeout), malformed 200 bodies, 404 for the
  first reads, and slow drips that keep a handler busy longer than the queue's lock
  duration (the worker's lock renewer must keep the lock);
- identity endpoint: failing (``fail_next``) and slow (``set_delay``);
- Service Bus: sends refused for a few seconds (queue and topic), connections dropped;
- the worker: SIGKILLed mid-run and restarted (``--kills`` times).

Invariants, checked at the end (``ChaosReport.violations``):

- every watch has exactly one terminal event on subscription "all", or sits in the
  dead-letter queue with a reason; none is lost;
- no duplicate terminal events (per watch, and per event id);
- never more than one *scheduled* poll per operation (sampled every 50 ms; a redelivered
  message plus its already-scheduled follow-up is not a fork: only SCHEDULED counts);
- no polling after a terminal event. Precisely: no poll for an operation is *scheduled*
  (sent to the queue) after its terminal event was decided (``data.finishedAt``; the
  sampler notices a new scheduled message within ``SAMPLER_SLACK``). A poll scheduled
  *before* it may still be pending and read once more (a lock lost mid-step: the
  redelivered step finished the watch while the first delivery's follow-up waits).
  Such ARM reads after ``finishedAt`` are counted ("late reads"); they answer terminal
  again, end in a dropped duplicate event, and must stay below the queue's
  MaxDeliveryCount per operation.

Prints a table of figures; ``run_chaos`` returns them for tests/e2e/test_chaos.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.arm import Step
from emulators.servicebus import MessageState
from emulators.stack import EVENTS_TOPIC, WATCH_QUEUE, LocalStack
from ops_status.events import watch_message_id
from ops_status.request import parse_watch_request

ROOT = Path(__file__).resolve().parents[1]

LOCK_DURATION = 3.0
MAX_DELIVERY_COUNT = 10
READ_TIMEOUT = 2.0
CONNECT_TIMEOUT = 3.0
WATCH_TIMEOUT = 8.0
# How late the sampler may notice a newly scheduled poll (its period plus a busy machine).
SAMPLER_SLACK = 1.0
SETTINGS = {
    "OPS_STATUS_POLL_MIN_DELAY": "1",
    "OPS_STATUS_POLL_MAX_DELAY": "2",
    "OPS_STATUS_POLL_GROWTH": "0.5",
    "OPS_STATUS_RETRY_AFTER_MAX": "2",
    "OPS_STATUS_HTTP_READ_TIMEOUT": f"{READ_TIMEOUT:g}",
    "OPS_STATUS_HTTP_CONNECT_TIMEOUT": f"{CONNECT_TIMEOUT:g}",
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

    @property
    def violations(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} watches lost: {self.lost[:5]}")
        if self.duplicates or self.duplicate_ids:
            found.append(f"{self.duplicates} duplicate events ({self.duplicate_ids} by id)")
        if self.forks:
            found.append(f"{self.forks} operations had more than one scheduled poll")
        if self.scheduled_after_terminal:
            found.append(
                f"scheduled polls after the terminal event: {self.scheduled_after_terminal}"
            )
        if self.late_reads_max >= MAX_DELIVERY_COUNT:
            found.append(f"up to {self.late_reads_max} ARM reads after a terminal event")
        if self.queue_left:
            found.append(f"{self.queue_left} messages left on the queue")
        return found

    def table(self) -> str:
        rows = [
            ("watches", f"{self.watches} ({_fmt(self.outcomes)})"),
            ("faults injected", f"{sum(self.faults.values())}"),
            *((f"  {kind}", str(n)) for kind, n in sorted(self.faults.items())),
            ("terminal events", str(self.terminal_events)),
            ("dead-lettered", f"{self.dead_lettered} ({_fmt(self.dead_letter_reasons)})"),
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
            ("left on queue", str(self.queue_left)),
            ("wall time", f"{self.wall_time:.1f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"| {name.ljust(width)} | {value} |" for name, value in rows)


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"


# -- the plan -------------------------------------------------------------------------


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
        message_id = watch_message_id(parse_watch_request(body, arm_endpoint=arm_endpoint))
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


# -- the run --------------------------------------------------------------------------


class _Sampler:
    """Samples the queue: scheduled polls per operation, and when each was last seen."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._stop = threading.Event()
        self.most: Counter[str] = Counter()
        # per operation: when the latest scheduled poll was first seen (about when sent)
        self.last_scheduled: dict[str, float] = {}
        self._seen: set[int] = set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            counts: Counter[str] = Counter()
            for message in self._stack.servicebus.peek_all(WATCH_QUEUE):
                if message.state is MessageState.SCHEDULED:
                    try:
                        operation = json.loads(message.body).get("operationId", "?")
                    except ValueError:
                        operation = "?"
                    counts[operation] += 1
                    # Service Bus reports no enqueued time for a scheduled message: the
                    # first sample that sees it bounds its send time (within a period).
                    if message.sequence_number not in self._seen:
                        self._seen.add(message.sequence_number)
                        self.last_scheduled[operation] = time.time()
            for operation, n in counts.items():
                self.most[operation] = max(self.most[operation], n)


class _Worker:
    """``python -m ops_status worker`` as a child process, killable and restartable."""

    def __init__(self, environment: dict[str, str], log_path: Path, concurrency: int) -> None:
        self._environment = environment
        self._log = log_path.open("ab")
        self._concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ops_status", "worker", "--concurrency", str(self._concurrency)],
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

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def _environment(stack: LocalStack) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "IDENTITY_SERVER_THUMBPRINT")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection"))
    }
    environment.update(stack.environment(identity_based=True, **SETTINGS))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _submit(client: ServiceBusClient, watches: list[Watch]) -> None:
    with client.get_queue_sender(WATCH_QUEUE) as sender:
        for start in range(0, len(watches), 50):
            sender.send_messages(
                [
                    ServiceBusMessage(
                        w.body, message_id=w.message_id, content_type="application/json"
                    )
                    for w in watches[start : start + 50]
                ]
            )


def run_chaos(
    watches: int = 300,
    seed: int = 1,
    *,
    kills: int = 4,
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
    faults: Counter[str] = Counter()
    with LocalStack(lock_duration=LOCK_DURATION, max_delivery_count=MAX_DELIVERY_COUNT) as stack:
        plan, arm_faults = plan_watches(watches, rng, stack.arm.endpoint)
        faults.update(arm_faults)
        by_correlation = {w.correlation_id: w for w in plan}
        for w in plan:
            if w.operation_id:
                stack.arm.script(w.operation_id, w.steps)
        client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
        worker = _Worker(_environment(stack), log_path, concurrency)
        sampler = _Sampler(stack)
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        event_ids: Counter[str] = Counter()
        stop_chaos = threading.Event()
        kill_times = sorted(rng.uniform(3.0, min(40.0, time_limit / 3)) for _ in range(kills))

        def monkey() -> None:
            """Service Bus and identity faults, and worker kills, at seeded times."""
            local = random.Random(seed + 1)
            begin = time.monotonic()
            pending_kills = list(kill_times)
            while not stop_chaos.wait(local.uniform(1.0, 3.0)):
                if pending_kills and time.monotonic() - begin >= pending_kills[0]:
                    pending_kills.pop(0)
                    worker.kill()
                    faults["worker_sigkill"] += 1
                    progress(f"  killed the worker at {time.monotonic() - begin:.1f} s")
                    if local.random() < 0.5:
                        stack.identity.fail_next(local.choice([2, 4]), 500)
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
                if choice == "refuse_queue":
                    stack.servicebus.refuse_sends(WATCH_QUEUE, for_seconds=local.uniform(1, 3))
                elif choice == "refuse_topic":
                    stack.servicebus.refuse_sends(EVENTS_TOPIC, for_seconds=local.uniform(1, 3))
                elif choice == "drop_connections":
                    stack.servicebus.drop_connections()
                elif choice == "identity_slow":
                    stack.identity.set_delay(1.5)
                    stop_chaos.wait(3.0)
                    stack.identity.set_delay(0)
                else:
                    stack.identity.fail_next(2, 503)

        chaos = threading.Thread(target=monkey, daemon=True, name="chaos-monkey")
        try:
            _submit(client, plan)
            progress(f"submitted {len(plan)} watches")
            sampler.start()
            worker.start()
            chaos.start()
            deadline = started + time_limit
            accounted_at: float | None = None
            last_report = time.monotonic()
            seen_sequence: set[int] = set()
            while time.monotonic() < deadline:
                try:
                    with client.get_subscription_receiver(EVENTS_TOPIC, "all") as receiver:
                        while time.monotonic() < deadline:
                            for message in receiver.receive_messages(
                                max_message_count=50, max_wait_time=0.5
                            ):
                                # A redelivery to *this* receiver (its connection was
                                # dropped before the completion) is not a duplicate event.
                                if message.sequence_number not in seen_sequence:
                                    seen_sequence.add(message.sequence_number)
                                    event = json.loads(b"".join(message.body))
                                    event_ids[event["id"]] += 1
                                    key = (event.get("data") or {}).get("correlationId")
                                    events[key or event["id"]].append(event)
                                receiver.complete_message(message)
                            dead = {
                                _correlation(m.body)
                                for m in stack.servicebus.dead_letters(WATCH_QUEUE)
                            }
                            done = sum(1 for c in by_correlation if c in events or c in dead)
                            if time.monotonic() - last_report > 10:
                                last_report = time.monotonic()
                                progress(
                                    f"  {done}/{len(plan)} accounted for after "
                                    f"{time.monotonic() - started:.0f} s"
                                )
                            if done == len(plan) and accounted_at is None:
                                accounted_at = time.monotonic()
                                stop_chaos.set()
                            # A quiet period after the last watch, for strays (duplicates).
                            if accounted_at is not None and time.monotonic() - accounted_at > 4:
                                break
                    if accounted_at is not None and time.monotonic() - accounted_at > 4:
                        break
                except (AzureError, OSError):
                    time.sleep(0.5)  # our own connection was dropped too: reopen
            stop_chaos.set()
            chaos.join(timeout=15)
            stack.identity.set_delay(0)
            if worker.process is None or worker.process.poll() is not None:
                worker.start()  # a kill may have been the last thing the monkey did
            stack.servicebus.wait_until(
                lambda: (
                    stack.servicebus.active_count(WATCH_QUEUE) == 0
                    and stack.servicebus.scheduled_count(WATCH_QUEUE) == 0
                ),
                timeout=10,
            )
        finally:
            stop_chaos.set()
            worker.stop()
            sampler.stop()
            client.close()
        wall = time.monotonic() - started
        dead_letters = stack.servicebus.dead_letters(WATCH_QUEUE)
        queue_left = stack.servicebus.active_count(WATCH_QUEUE) + stack.servicebus.scheduled_count(
            WATCH_QUEUE
        )
        duplicates_dropped = {
            "queue": stack.servicebus.duplicates_dropped(WATCH_QUEUE),
            "topic": stack.servicebus.duplicates_dropped(EVENTS_TOPIC),
        }
        arm_requests = stack.arm.requests
    # The SDK leaves the sockets of connections the emulator dropped for the garbage
    # collector (ResourceWarning): collect them here, inside the run, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

    return _report(
        plan,
        events,
        event_ids,
        dead_letters,
        arm_requests,
        sampler,
        faults,
        wall,
        log_path,
        queue_left,
        duplicates_dropped,
    )


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
    log_counts: Counter[str] = Counter()
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            for marker in (
                "worker.abandoning",
                "worker.settle_failed",
                "worker.receiver_failed",
                "servicebus.send_failed",
                "watch.finished",
                "watch.rejected",
                "Traceback",
            ):
                if marker in line:
                    log_counts[marker] += 1
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
        worker_log_counts=log_counts,
        queue_left=queue_left,
        duplicates_dropped=duplicates_dropped,
        log_path=str(log_path),
    )


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
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=4, help="worker SIGKILLs (default 4)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default scales)")
    args = parser.parse_args(argv)
    report = run_chaos(
        args.watches,
        args.seed,
        kills=args.kills,
        concurrency=args.concurrency,
        time_limit=args.time_limit,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"chaos run: seed {args.seed}, {machine()}")
    print(report.table())
    print(f"worker log: {report.log_path}")
    if report.violations:
        print("INVARIANTS VIOLATED:")
        for violation in report.violations:
            print(f"- {violation}")
        return 1
    print("all invariants hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
