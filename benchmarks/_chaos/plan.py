"""The scenarios: the watches a run submits and the ARM faults each operation meets."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulators.arm import Step
from ops_status.request import parse_watch_request, submission_key

from .config import (
    ARM_ERROR,
    OUTCOMES,
    READ_TIMEOUT,
    WATCH_TIMEOUT,
)


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
