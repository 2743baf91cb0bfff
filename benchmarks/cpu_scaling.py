"""Watches per second of ``python -m ops_status worker --processes N``, for N = 1, 2, ...

Run: ``python -m benchmarks.cpu_scaling [--processes 1,2] [--rounds 3] [--messages 2000]
[--concurrency 16]``.

For each round and each N (interleaved, so machine load falls on every N alike): the
intake queue of the local stack (``benchmarks.handler_cost.StackProcess``, a child
process: emulator, ARM simulator, identity endpoint) is filled with ``--messages``
watches of ``handler_cost``'s mix (70 % still running: a scheduled follow-up; 30 %
finished: an event), then the real CLI worker is started with ``--processes N`` and
logging at INFO (one line per handled message, read here from its stderr). The rate is
the messages handled between the first and the last handled-message line (start-up
excluded); the worker is then stopped with SIGTERM. Also printed: the worker processes'
CPU per message (``resource.getrusage(RUSAGE_CHILDREN)`` around the run: the parent and
its children, start-up included), the peers' CPU per message, the load average before
and after, and ``nproc``.

On a machine with few cores the peers compete with the workers: the emulator alone
spends about as much CPU per message as a worker process, so 2 processes on 2 cores
cannot double the rate. The figures say how far it goes here.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.handler_cost import (
    _FOREIGN_IDENTITY,
    APP_SETTINGS,
    StackProcess,
    _feed_queue,
    make_workload,
)

ROOT = Path(__file__).resolve().parents[1]
_HANDLED = ("watch.rescheduled", "watch.finished")


@dataclass(frozen=True)
class Run:
    processes: int
    messages: int
    span_s: float
    """First to last handled-message line."""
    cpu_s: float
    """The worker's processes, start-up and stop included."""
    stack_cpu_s: float = 0.0
    """The peers' process (emulator, ARM simulator, identity endpoint) meanwhile."""

    @property
    def rate(self) -> float:
        return (self.messages - 1) / self.span_s if self.span_s > 0 else 0.0

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.cpu_s / self.messages


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    stack: StackProcess,
    environment: Mapping[str, str],
    *,
    processes: int,
    messages: int,
    concurrency: int,
    timeout: float = 600.0,
) -> Run:
    """Fill the intake queue, run the worker until all are handled, stop it."""
    watches = make_workload(messages, f"p{processes}", environment["OPS_STATUS_ARM_ENDPOINT"])
    stack.script([(w.operation_id, w.kind) for w in watches])
    connection = stack.environment(identity_based=False)["ServiceBusConnection"]
    _feed_queue(connection, environment["OPS_STATUS_INTAKE_QUEUE"], watches)
    child_environment = {
        k: v
        for k, v in os.environ.items()
        if k not in _FOREIGN_IDENTITY and not k.startswith(("OPS_STATUS_", "ServiceBus"))
    }
    child_environment.update(environment)
    command = [sys.executable, "-m", "ops_status", "worker"]
    command += ["--processes", str(processes), "--concurrency", str(concurrency)]
    cpu_before = _children_cpu()
    stack_before = float(stack.counters()["cpu"])
    first = last = 0.0
    handled = 0
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        command,
        env=child_environment,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        assert worker.stderr is not None
        for line in worker.stderr:
            if any(event in line for event in _HANDLED):
                now = time.perf_counter()
                handled += 1
                first = first or now
                last = now
                if handled == messages:
                    worker.send_signal(signal.SIGTERM)
            elif "Traceback" in line or " ERROR " in line:
                sys.stderr.write(line)
            if time.monotonic() > deadline and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    if handled < messages:
        raise RuntimeError(f"--processes {processes}: {handled} of {messages} handled")
    stack_cpu = float(stack.counters()["cpu"]) - stack_before
    # What was counted, not what was asked for: a redelivered message logs a second line.
    return Run(processes, handled, last - first, _children_cpu() - cpu_before, stack_cpu)


def run_benchmark(
    *,
    processes: Sequence[int] = (1, 2),
    rounds: int = 3,
    messages: int = 2000,
    concurrency: int = 16,
) -> tuple[list[Run], tuple[float, ...], tuple[float, ...]]:
    runs: list[Run] = []
    load_before = os.getloadavg()
    with StackProcess() as stack:
        environment = stack.environment(identity_based=False, **APP_SETTINGS)
        for round_number in range(rounds):
            shift = round_number % len(processes)
            for count in [*processes[shift:], *processes[:shift]]:
                runs.append(
                    run_once(
                        stack,
                        environment,
                        processes=count,
                        messages=messages,
                        concurrency=concurrency,
                    )
                )
    return runs, load_before, os.getloadavg()


def format_report(
    runs: Sequence[Run], load_before: Sequence[float], load_after: Sequence[float]
) -> str:
    lines = [
        f"{'processes':>9} {'runs':>4} {'watches/s min / median / max':>30} {'x 1 process':>11} "
        f"{'CPU ms/watch (median)':>22} {'peers CPU ms/watch':>19}"
    ]
    counts = sorted({r.processes for r in runs})
    base = statistics.median(r.rate for r in runs if r.processes == counts[0])
    for count in counts:
        mine = [r for r in runs if r.processes == count]
        rates = [r.rate for r in mine]
        spread = f"{min(rates):.0f} / {statistics.median(rates):.0f} / {max(rates):.0f}"
        cpu = statistics.median(r.cpu_ms_per_message for r in mine)
        peers = statistics.median(1000 * r.stack_cpu_s / r.messages for r in mine)
        lines.append(
            f"{count:>9} {len(mine):>4} {spread:>30} "
            f"{statistics.median(rates) / base:>10.2f}x {cpu:>22.2f} {peers:>19.2f}"
        )
    lines.append("")
    lines.append(
        "load average (1/5/15 min) before "
        + "/".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + "/".join(f"{x:.2f}" for x in load_after)
        + f"; nproc {len(os.sched_getaffinity(0))}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_scaling", description=__doc__)
    parser.add_argument("--processes", default="1,2", help="comma-separated counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",") if n.strip()]
    print(
        f"{args.rounds} rounds x {args.messages} watches per process count, concurrency "
        f"{args.concurrency} per process, interleaved; Python {sys.version.split()[0]}"
    )
    runs, before, after = run_benchmark(
        processes=counts, rounds=args.rounds, messages=args.messages, concurrency=args.concurrency
    )
    print(format_report(runs, before, after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
