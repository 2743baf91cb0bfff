"""The demo: the product's main job, end to end, on a local stack. ``make demo`` runs it.

It starts the local peers (identity endpoint, ARM, Service Bus over AMQP), starts the
real worker (``python -m ops_status worker``) as a child process pointed at them,
submits a handful of watches the way a pipeline would, shows live progress per
operation from the queue (status, polls so far, next check), prints the events as a
downstream subscriber receives them from a topic subscription, and ends with a summary.

Exit code 0 when every watch ended with the expected event within the time limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.arm import Step
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack
from ops_status.errors import InvalidWatchRequestError
from ops_status.request import parse_watch_request, submission_key

__all__ = ["run_demo"]

SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
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


@dataclass(frozen=True)
class DemoWatch:
    name: str
    body: dict[str, Any]
    steps: list[Step]
    expected: str
    story: str


def _watches() -> list[DemoWatch]:
    def parts(operation_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "subscriptionId": SUBSCRIPTION,
            "location": "West US",
            "operationId": operation_id,
            "correlationId": f"demo-{operation_id}",
            "context": {"pipeline": "demo", "step": operation_id},
            **extra,
        }

    return [
        DemoWatch(
            "cache-create",
            parts("cache-create"),
            [Step.running(status="Creating", percent_complete=p) for p in (10, 35, 60, 85)]
            + [Step.succeeded()],
            "OpsStatus.Operation.Succeeded",
            "succeeds after several polls",
        ),
        DemoWatch(
            "cache-scale",
            parts("cache-scale"),
            [Step.running(status="Updating", repeat=2), Step.failed(error=QUOTA_ERROR)],
            "OpsStatus.Operation.Failed",
            "fails with a nested ARM error payload",
        ),
        DemoWatch(
            "cache-delete",
            parts("cache-delete"),
            [Step.throttled(retry_after="4"), Step.running(status="Deleting"), Step.succeeded()],
            "OpsStatus.Operation.Succeeded",
            "is throttled (429, Retry-After: 4) first",
        ),
        DemoWatch(
            "bad-request",
            {
                "statusUrl": "https://evil.example.com/subscriptions/x/operations/1",
                "correlationId": "demo-bad-request",
            },
            [],
            "OpsStatus.Watch.Rejected",
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


def run_demo(*, time_limit: float = 60.0, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the process exit code."""
    console = Console(out)
    with LocalStack() as stack:
        watches = _watches()
        for watch in watches:
            if watch.steps:
                stack.arm.script(watch.name, watch.steps)
        console.say(
            f"local stack up: ARM {stack.arm.endpoint}, identity {stack.identity.endpoint}, "
            f"Service Bus {stack.servicebus.fully_qualified_namespace} "
            f"(intake {INTAKE_QUEUE}, polls {POLLS_QUEUE}, topic {EVENTS_TOPIC})"
        )
        environment = stack.environment(
            OPS_STATUS_POLL_MIN_DELAY="1",
            OPS_STATUS_POLL_MAX_DELAY="3",
            OPS_STATUS_POLL_GROWTH="0.5",
        )
        with tempfile.NamedTemporaryFile(
            "w+", prefix="ops-status-worker-", suffix=".log", delete=False
        ) as worker_log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "ops_status", "worker", "--concurrency", "4"],
                env={**os.environ, **environment},
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
            console.say(
                f"worker started (pid {worker.pid}, log {worker_log.name}), "
                "poll delays shortened to 1-3 s for the demo"
            )
            try:
                events = _drive(stack, watches, console, time_limit)
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
            console.say(f"worker stopped gracefully (exit code {worker.returncode})")
    return _summary(watches, events, console)


def _drive(
    stack: LocalStack, watches: list[DemoWatch], console: Console, time_limit: float
) -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    arrived = threading.Event()
    client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
    stop = threading.Event()

    def subscriber() -> None:
        # What a downstream consumer does: receive from its topic subscription.
        with client.get_subscription_receiver(EVENTS_TOPIC, "all") as receiver:
            while not stop.is_set():
                for message in receiver.receive_messages(max_message_count=10, max_wait_time=1):
                    event = json.loads(b"".join(message.body))
                    receiver.complete_message(message)
                    name = _name_of(event)
                    events[name] = event
                    console.say(_describe_event(event))
                    arrived.set()

    listener = threading.Thread(target=subscriber, name="demo-subscriber", daemon=True)
    listener.start()
    with client.get_queue_sender(INTAKE_QUEUE) as sender:
        for watch in watches:
            body = json.dumps(watch.body).encode()
            sender.send_messages(
                ServiceBusMessage(
                    body,
                    message_id=_submit_id(body, stack.arm.endpoint),
                    content_type="application/json",
                )
            )
            console.say(f"submitted {watch.name:<13} ({watch.story})")

    deadline = time.monotonic() + time_limit
    last_seen: dict[str, tuple[Any, ...]] = {}
    while len(events) < len(watches) and time.monotonic() < deadline:
        _show_progress(stack, console, last_seen, set(events))
        arrived.wait(0.5)
        arrived.clear()
    stop.set()
    listener.join(timeout=5)
    client.close()
    return events


def _show_progress(
    stack: LocalStack, console: Console, last_seen: dict[str, tuple[Any, ...]], done: set[str]
) -> None:
    now = datetime.now(timezone.utc)
    for message in stack.servicebus.peek_all(POLLS_QUEUE):
        try:
            body = json.loads(message.body)
        except ValueError:
            continue
        name = body.get("operationId")
        state = body.get("pollState")
        if not name or not state or name in done:
            continue
        key = (state.get("attempt"), state.get("lastStatus"), state.get("consecutiveFailures"))
        if last_seen.get(name) == key:
            continue
        last_seen[name] = key
        due = message.scheduled_enqueue_time
        wait = f"{max((due - now).total_seconds(), 0):.1f}s" if due else "now"
        status = state.get("lastStatus") or "-"
        failures = state.get("consecutiveFailures") or 0
        note = f", {failures} failed read(s)" if failures else ""
        console.say(
            f"progress  {name:<13} status={status:<9} polls={state.get('attempt')}"
            f"  next check in {wait}{note}"
        )


def _describe_event(event: dict[str, Any]) -> str:
    data = event.get("data", {})
    line = (
        f"EVENT     {_name_of(event):<13} {event.get('type')}  polls={data.get('polls', '-')}"
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


def _name_of(event: dict[str, Any]) -> str:
    """Which demo watch an event ends: each has the correlation id ``demo-<name>``."""
    data = event.get("data", {})
    correlation = str(data.get("correlationId") or "")
    if correlation.startswith("demo-"):
        return correlation.removeprefix("demo-")
    return str(data.get("operationId", "?"))


def _submit_id(body: bytes, arm_endpoint: str) -> str:
    try:
        return submission_key(parse_watch_request(body, arm_endpoint=arm_endpoint))
    except InvalidWatchRequestError:
        return str(uuid.uuid4())


def _summary(watches: list[DemoWatch], events: dict[str, dict[str, Any]], console: Console) -> int:
    console.say("summary")
    ok = True
    for watch in watches:
        event = events.get(watch.name)
        got = event.get("type") if event else "(no event)"
        polls = event.get("data", {}).get("polls", "-") if event else "-"
        good = got == watch.expected
        ok = ok and good
        console.say(f"  {'ok ' if good else 'BAD'} {watch.name:<13} {got:<32} polls={polls}")
    console.say(
        "demo passed: every watch ended with exactly the expected event"
        if ok
        else "demo FAILED: see above"
    )
    return 0 if ok else 1
