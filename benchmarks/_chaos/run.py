"""``run_chaos``: hundreds of watches through the real worker while every boundary
misbehaves (see ``benchmarks/chaos.py`` for the faults and the invariants)."""

from __future__ import annotations

import gc
import os
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from azure.servicebus import ServiceBusClient

from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack

from .config import (
    DEPLOYED_WINDOW,
    LOCK_DURATION,
    LONG_REFUSAL,
    MAX_DELIVERY_COUNT,
)
from .harness import (
    EventCollector,
    Sampler,
    Worker,
    dead_letters_of,
    queues_left,
    submit_watches,
    worker_environment,
)
from .plan import plan_watches
from .report import ChaosReport, build_report, correlation_of
from .seam import SeamCounts, entity_sends


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
        worker = Worker(worker_environment(stack), log_path, concurrency, attempts)
        sampler = Sampler(stack)
        collector = EventCollector()
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
            dead = {correlation_of(m.body) for m in dead_letters_of(stack)}
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
            submit_watches(pipeline, plan)
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
            stack.servicebus.wait_until(lambda: queues_left(stack) == 0, timeout=30)
        finally:
            stop_chaos.set()
            worker.stop()
            sampler.stop()
            client.close()
            pipeline.close()
        wall = time.monotonic() - started
        dead_letters = dead_letters_of(stack)
        dead_by_queue = {
            "intake": stack.servicebus.dead_letter_count(INTAKE_QUEUE),
            "polls": stack.servicebus.dead_letter_count(POLLS_QUEUE),
        }
        queue_left = queues_left(stack)
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

    report = build_report(
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
