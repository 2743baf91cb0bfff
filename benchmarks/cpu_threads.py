"""The Functions path in the Python worker's shape: handler throughput by thread count.

Run: ``python -m benchmarks.cpu_threads [--threads 6,16] [--in-flight 32] [--rounds 3]
[--messages 300] [--arm-latency 0.1]``.

The Python worker runs a sync function on a ``ThreadPoolExecutor`` of
``PYTHON_THREADPOOL_THREAD_COUNT`` threads (unset: Python's default, min(32, cores + 4):
6 on 2 cores); the host hands it up to ``maxConcurrentCalls`` messages per trigger at
once (host.json), and whatever exceeds the threads waits in the executor's queue while
its message lock runs. This script submits ``function_app.watch_intake`` calls to such
an executor with ``--in-flight`` invocations outstanding (two triggers x
maxConcurrentCalls), against the local stack (``benchmarks.handler_cost.StackProcess``,
in a child process), whose ARM simulator answers after ``--arm-latency`` seconds (real
ARM: 50-200 ms). Rounds interleave the thread counts.

Printed per thread count: messages per second, CPU ms per message
(``time.process_time``), and how long invocations waited for a thread (median, p95):
the lock time a message spends queued inside the worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from benchmarks.handler_cost import (
    APP_SETTINGS,
    StackProcess,
    app_environment,
    fresh_function_app,
    functions_message,
    make_workload,
    product_logging,
)


@dataclass(frozen=True)
class Sample:
    threads: int
    messages: int
    wall_s: float
    cpu_s: float
    waits: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.messages

    def wait_ms(self, quantile: float) -> float:
        ordered = sorted(self.waits)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def run_once(
    stack: StackProcess,
    environment: Mapping[str, str],
    *,
    threads: int,
    in_flight: int,
    messages: int,
    warm_up: int,
    arm_latency: float,
) -> Sample:

    from ops_status.bootstrap import get_dependencies, reset_dependencies

    watches = make_workload(
        warm_up + messages, f"t{threads}", environment["OPS_STATUS_ARM_ENDPOINT"]
    )
    stack.script([(w.operation_id, w.kind) for w in watches], latency=arm_latency)
    enqueued = datetime.now(timezone.utc)
    with app_environment(environment):
        function_app = fresh_function_app()
        slots = threading.BoundedSemaphore(in_flight)
        waits: list[float] = []

        def invoke(index: int, submitted: float) -> None:
            if index >= warm_up:
                waits.append(time.perf_counter() - submitted)
            watch = watches[index]
            try:
                function_app.watch_intake(functions_message(watch, enqueued))
            finally:
                slots.release()

        try:
            with product_logging(), ThreadPoolExecutor(max_workers=threads) as pool:
                futures = []
                cpu = wall = 0.0
                for index in range(warm_up + messages):
                    if index == warm_up:
                        for future in futures:
                            future.result()
                        cpu, wall = time.process_time(), time.perf_counter()
                    slots.acquire()  # the host hands over at most in_flight at once
                    futures.append(pool.submit(invoke, index, time.perf_counter()))
                for future in futures:
                    future.result()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            credential = get_dependencies(function_app.settings).credential
            reset_dependencies()
            getattr(credential, "close", lambda: None)()
            sys.modules.pop("function_app", None)
    return Sample(threads, messages, wall, cpu, tuple(waits))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_threads", description=__doc__)
    parser.add_argument("--threads", default="6,16", help="comma-separated thread counts")
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=40)
    parser.add_argument("--arm-latency", type=float, default=0.1)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.threads.split(",") if n.strip()]
    print(
        f"{args.rounds} rounds x {args.messages} messages per thread count, {args.in_flight} "
        f"in flight, ARM latency {args.arm_latency * 1000:g} ms; Python {sys.version.split()[0]}"
    )
    load_before = os.getloadavg()
    samples: list[Sample] = []
    with StackProcess() as stack:
        environment = stack.environment(**APP_SETTINGS)
        for round_number in range(args.rounds):
            shift = round_number % len(counts)
            for threads in [*counts[shift:], *counts[:shift]]:
                samples.append(
                    run_once(
                        stack,
                        environment,
                        threads=threads,
                        in_flight=args.in_flight,
                        messages=args.messages,
                        warm_up=args.warm_up,
                        arm_latency=args.arm_latency,
                    )
                )
    print(
        f"{'threads':>7} {'msg/s min / median / max':>26} {'CPU ms/msg (median)':>20} "
        f"{'wait for a thread ms p50 / p95 (median run)':>44}"
    )
    for threads in counts:
        mine = [s for s in samples if s.threads == threads]
        rates = [s.rate for s in mine]
        middle = sorted(mine, key=lambda s: s.rate)[len(mine) // 2]
        spread = f"{min(rates):.0f} / {statistics.median(rates):.0f} / {max(rates):.0f}"
        waits = f"{middle.wait_ms(0.5):.0f} / {middle.wait_ms(0.95):.0f}"
        cpu = statistics.median(s.cpu_ms for s in mine)
        print(f"{threads:>7} {spread:>26} {cpu:>20.2f} {waits:>44}")
    after = os.getloadavg()
    print(
        "\nload average (1/5/15 min) before "
        + "/".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + "/".join(f"{x:.2f}" for x in after)
        + f"; nproc {len(os.sched_getaffinity(0))}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
