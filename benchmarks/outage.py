"""Identity outage: how long until the watches in flight are lost, or how they end.

Run: ``python -m benchmarks.outage [--watches 5] [--runs 3] [--grace 20]``.

A ``LocalStack`` with the template's MaxDeliveryCount (10) runs the real standalone worker
(``python -m ops_status worker``, a child process) against it. Service Bus is reached by
connection string, so only the ARM token depends on the managed-identity endpoint, which
answers 503 to every token request for the whole run. For each watch the script records
when it was dead-lettered or when its terminal event arrived, counted from its submission.

Written to run unchanged on the commit before the trust-boundary change (one queue,
``OPS_STATUS_WATCH_QUEUE``) and after it (intake and polls queues), so the two figures
come from one script: before, a token failure raised and the host's immediate redelivery
spent the ten deliveries in seconds; after, it is a failed read retried with back-off
until ``OPS_STATUS_TOKEN_FAILURE_GRACE`` (shortened here with ``--grace``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators import stack as stack_module
from emulators.arm import Step

SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"


def _queues() -> tuple[str, list[str]]:
    """(where a pipeline submits, every queue a watch can be dead-lettered from)."""
    intake = getattr(stack_module, "INTAKE_QUEUE", None)
    if intake is not None:
        return intake, [intake, stack_module.POLLS_QUEUE]
    return stack_module.WATCH_QUEUE, [stack_module.WATCH_QUEUE]


def one_run(watches: int, grace: float, limit: float) -> list[tuple[str, float]]:
    """(outcome, seconds after submission) per watch: 'dead-lettered', an event type, or
    'still running' at ``limit``."""
    intake, queues = _queues()
    with stack_module.LocalStack(lock_duration=30.0, max_delivery_count=10) as local:
        names = [f"op-outage-{n}" for n in range(watches)]
        for name in names:
            local.arm.script(name, [Step.succeeded()])
        local.identity.fail_next(10_000_000, status=503)
        environment = local.environment(
            identity_based=False,
            OPS_STATUS_TOKEN_FAILURE_GRACE=str(grace),
            OPS_STATUS_POLL_MIN_DELAY="1",
            OPS_STATUS_POLL_MAX_DELAY="5",
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "ops_status", "worker", "--concurrency", "4"],
            env={**os.environ, **environment},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = ServiceBusClient.from_connection_string(local.servicebus.connection_string)
        outcome: dict[str, tuple[str, float]] = {}
        try:
            started = time.monotonic()
            with client.get_queue_sender(intake) as sender:
                for name in names:
                    body = {"subscriptionId": SUBSCRIPTION, "location": "westus"}
                    body["operationId"] = name
                    sender.send_messages(
                        ServiceBusMessage(json.dumps(body), message_id=str(uuid.uuid4()))
                    )
            with client.get_subscription_receiver(stack_module.EVENTS_TOPIC, "all") as events:
                while len(outcome) < watches and time.monotonic() - started < limit:
                    for message in events.receive_messages(max_wait_time=0.5):
                        event = json.loads(b"".join(message.body))
                        name = event["data"].get("operationId")
                        outcome.setdefault(name, (event["type"], time.monotonic() - started))
                        events.complete_message(message)
                    for queue in queues:
                        for dead in local.servicebus.dead_letters(queue):
                            name = json.loads(dead.body).get("operationId")
                            outcome.setdefault(name, ("dead-lettered", time.monotonic() - started))
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            client.close()
        return [outcome.get(name, ("still running", limit)) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--grace", type=float, default=20.0)
    parser.add_argument("--limit", type=float, default=90.0)
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores)")
    results: list[tuple[str, float]] = []
    for run in range(args.runs):
        found = one_run(args.watches, args.grace, args.limit)
        results.extend(found)
        kinds = sorted({kind for kind, _ in found})
        print(
            f"run {run + 1}: "
            + ", ".join(f"{k} x{sum(1 for x, _ in found if x == k)}" for k in kinds)
        )
    for kind in sorted({kind for kind, _ in results}):
        times = [t for k, t in results if k == kind]
        print(
            f"{kind:<32} {len(times):>3} watches  after min {min(times):6.1f} s  "
            f"median {statistics.median(times):6.1f} s  max {max(times):6.1f} s"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
