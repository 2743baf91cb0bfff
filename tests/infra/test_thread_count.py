"""The Python worker's thread pool and host.json's concurrency agree (template, sample)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ops_status.arm import DEFAULT_MAX_CONNECTIONS

ROOT = Path(__file__).parents[2]


def load(name: str) -> Any:
    return json.loads((ROOT / name).read_text(encoding="utf-8"))


def test_every_message_the_host_hands_over_gets_a_thread() -> None:
    # given the host's concurrency: maxConcurrentCalls per Service Bus trigger
    per_trigger = load("host.json")["extensions"]["serviceBus"]["maxConcurrentCalls"]
    triggers = (
        (ROOT / "function_app.py")
        .read_text(encoding="utf-8")
        .count("@app.service_bus_queue_trigger(")
    )
    assert triggers == 2
    # then the deployed and the local thread counts are exactly that many threads
    template = {
        entry["name"]: entry["value"]
        for entry in load("infra/azuredeploy.json")["variables"]["appSettings"]
    }
    sample = load("local.settings.sample.json")["Values"]
    assert int(template["PYTHON_THREADPOOL_THREAD_COUNT"]) == per_trigger * triggers
    assert sample["PYTHON_THREADPOOL_THREAD_COUNT"] == template["PYTHON_THREADPOOL_THREAD_COUNT"]
    # and the ARM client keeps a connection per thread (none discarded, none reopened)
    assert per_trigger * triggers <= DEFAULT_MAX_CONNECTIONS
