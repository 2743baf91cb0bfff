"""The ``amqp-bodies`` class: non-data AMQP bodies sent with the real SDK to the Service
Bus emulator and handled by the real worker; each must end as one ``Rejected`` event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .documents import (
    examples_of,
    nested_value,
)
from .harness import ClassTally, HandlerHarness
from .properties import (
    ROOT,
    SUB,
)


def amqp_bodies(random_count: int = 0, seed: int = 1) -> list[tuple[str, str, Any]]:
    """(label, section kind "value" or "sequence", body). Binary map keys and nesting
    deeper than 40 are left out: the emulator cannot carry them (see docs/reliability.md)."""
    valid = {
        "subscriptionId": SUB,
        "location": "westus",
        "operationId": "op-1",
        "correlationId": "amqp",
    }
    bodies: list[tuple[str, str, Any]] = [
        ("amqp-value string", "value", ""),
        ("amqp-value string", "value", "hello"),
        ("amqp-value string", "value", "\u00e9\u4e2d\U0001f600 \n\x00"),
        ("amqp-value string: a valid request as text", "value", json.dumps(valid)),
        ("amqp-value string: 10 KB", "value", "x" * 10_000),
        ("amqp-value binary: a valid request as bytes", "value", json.dumps(valid).encode()),
        ("amqp-value binary", "value", b"\xff\xfe\x00"),
        ("amqp-value number", "value", 0),
        # the SDK encodes a Python int as an AMQP int (32 bits)
        ("amqp-value number", "value", -(2**31)),
        ("amqp-value number", "value", 2**31 - 1),
        ("amqp-value number", "value", 1.5),
        ("amqp-value bool", "value", True),
        ("amqp-value list", "value", [1, "a", None, [b"x"]]),
        ("amqp-value map: a valid request as a map", "value", valid),
        ("amqp-value map", "value", {}),
        ("amqp-value map", "value", {1: "a", 2: [1, 2], "k": {"n": None}}),
        ("amqp-value map: nested 40", "value", nested_value("object", 40)),
        ("amqp-sequence", "sequence", [[1, 2, 3]]),
        ("amqp-sequence", "sequence", [[]]),
        ("amqp-sequence: a valid request map", "sequence", [[valid]]),
        ("amqp-sequence: two sections", "sequence", [["a"], ["b", 2]]),
        ("amqp-sequence: nested 40", "sequence", [[nested_value("array", 39)]]),
    ]
    if random_count:
        from hypothesis import strategies as st

        leaves = st.one_of(
            st.text(st.characters(blacklist_categories=["Cs"]), max_size=20),
            st.integers(min_value=-(2**31), max_value=2**31 - 1),
            st.booleans(),
            st.floats(allow_nan=False),
            st.binary(max_size=20),
        )
        values = st.recursive(
            leaves,
            lambda inner: st.one_of(
                st.lists(inner, max_size=4),
                st.dictionaries(st.text(max_size=8), inner, max_size=4),
            ),
            max_leaves=12,
        )
        kinds = st.one_of(
            st.tuples(st.just("value"), values),
            st.tuples(
                st.just("sequence"), st.lists(st.lists(values, max_size=3), min_size=1, max_size=3)
            ),
        )
        for kind, body in examples_of(kinds, random_count, seed):
            label = "amqp-value (generated)" if kind == "value" else "amqp-sequence (generated)"
            bodies.append((label, kind, body))
    return bodies


def _worker_environment(stack: Any) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "IDENTITY_SERVER_THUMBPRINT")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection"))
    }
    environment.update(stack.environment(identity_based=True))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@dataclass
class AmqpRun:
    tally: ClassTally
    completed: bool
    """Both queues empty at the end: every message was completed."""
    dead_lettered: int
    abandoned: int
    """``worker.abandoning`` lines in the worker's log."""
    log_path: str


def run_amqp_class(
    random_count: int = 0, seed: int = 1, *, timeout: float = 60.0, log_path: Path | None = None
) -> AmqpRun:
    """Send every body to the intake queue (and every other one to the polls queue) with
    the real SDK, run the real worker, and count what became of each message."""
    from azure.servicebus import ServiceBusClient
    from azure.servicebus.amqp import AmqpAnnotatedMessage

    from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack

    tally = ClassTally()
    bodies = amqp_bodies(random_count, seed)
    log_path = log_path or Path(f"/tmp/ops-status-fuzz-amqp-{os.getpid()}.log")
    log_path.unlink(missing_ok=True)
    with LocalStack(lock_duration=5.0, max_delivery_count=3) as stack:
        client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
        # A pipeline's connection (Send on the intake queue only) for the intake queue; the
        # polls queue takes the app's (root) one, as a bug in the product would send there.
        pipeline = ServiceBusClient.from_connection_string(stack.pipeline_connection_string)
        sent: dict[str, tuple[str, str, Any]] = {}
        with (
            pipeline.get_queue_sender(INTAKE_QUEUE) as intake,
            client.get_queue_sender(POLLS_QUEUE) as polls,
        ):
            for i, (label, kind, body) in enumerate(bodies):
                for queue, sender in (("intake", intake), ("polls", polls)):
                    if queue == "polls" and i % 2:
                        continue
                    message_id = f"amqp-{queue}-{i}"
                    section = {"value_body": body} if kind == "value" else {"sequence_body": body}
                    sender.send_messages(
                        AmqpAnnotatedMessage(**section, properties={"message_id": message_id})
                    )
                    sent[message_id] = (label, queue, body)
        pipeline.close()
        polls_sent_by_us = stack.servicebus.sent_count(POLLS_QUEUE)
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "ops_status", "worker", "--concurrency", "4"],
                env=_worker_environment(stack),
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + timeout
                with client.get_subscription_receiver(EVENTS_TOPIC, "all") as receiver:
                    while time.monotonic() < deadline and not all(m in events for m in sent):
                        for message in receiver.receive_messages(
                            max_message_count=50, max_wait_time=0.5
                        ):
                            event = json.loads(b"".join(message.body))
                            key = (event.get("data") or {}).get("receivedMessageId") or event["id"]
                            events[key].append(event)
                            receiver.complete_message(message)
                stack.servicebus.wait_until(
                    lambda: all(
                        stack.servicebus.active_count(q) == 0 for q in (INTAKE_QUEUE, POLLS_QUEUE)
                    ),
                    timeout=5,
                )
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=10)
        client.close()
        completed = all(stack.servicebus.active_count(q) == 0 for q in (INTAKE_QUEUE, POLLS_QUEUE))
        dead = sum(stack.servicebus.dead_letter_count(q) for q in (INTAKE_QUEUE, POLLS_QUEUE))
        followed_up = stack.servicebus.sent_count(POLLS_QUEUE) - polls_sent_by_us
    abandoned = log_path.read_text(errors="replace").count("worker.abandoning")
    schema = HandlerHarness().schemas["event"]
    for message_id, (label, queue, body) in sent.items():
        tally.generated += 1
        tally.generated_by_label[label] += 1
        shown = f"[{queue}] {label}: {str(body)[:120]!r}"
        got = events.get(message_id, [])
        if not got:
            tally.escaped += 1
            signature = "no event: the message was abandoned, dead-lettered or never handled"
            n, first, trace = tally.escapes.get(signature, (0, shown, f"see {log_path}"))
            tally.escapes[signature] = (n + 1, first, trace)
            continue
        if all(e["type"] == "OpsStatus.Watch.Rejected" for e in got):
            tally.rejected += 1
        else:
            tally.accepted += 1
            tally.accepted_by_label[label] += 1
        if len(got) > 1:
            tally.violations += 1
            tally.note(tally.violation_examples, "more than one event", shown)
        for event in got:
            errors = list(schema.iter_errors(event))
            if errors:
                tally.violations += 1
                tally.note(
                    tally.violation_examples,
                    f"event not schema-valid: {errors[0].message[:60]}",
                    shown,
                )
            if event["type"] == "OpsStatus.Watch.Rejected" and not any(
                "AMQP" in e for e in event["data"].get("errors", [])
            ):
                tally.violations += 1
                tally.note(
                    tally.violation_examples,
                    "rejected for another reason than the body section",
                    shown,
                )
    if followed_up:
        tally.violations += 1
        tally.note(
            tally.violation_examples, f"{followed_up} polls scheduled for non-data bodies", "-"
        )
    return AmqpRun(tally, completed, dead, abandoned, str(log_path))
