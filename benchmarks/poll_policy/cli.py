"""The command line: ``python -m benchmarks.poll_policy [command] [options]``.

Commands (one module each under ``commands/``, each with ``add_parser`` and ``run``):

- ``tables`` (the default): one seed, the spread workload and a 2,000-operation fleet,
  every poller, driving the real ``decide``;
- ``seeds``: min / median / max over many seeds of every policy's excess over the oracle;
- ``sweep``: ours over a grid of ``min_delay`` x ``growth`` x ``lead`` x ``max_delay``;
- ``fleet``: 10,000 operations on one subscription (or spread over 20), and what one
  subscription carries at each ``read_budget_max_delay``;
- ``cost``: 1,000 watches on Flex Consumption and Service Bus vs ``az ... wait`` agent minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence

from benchmarks.poll_policy.commands import cost, fleet, seeds, sweep, tables
from benchmarks.poll_policy.workload import (
    FAILURE_SHARE,
    MAX_DURATION,
    MIN_DURATION,
    PROGRESS_NOISE,
    PROGRESS_RATE,
    PROGRESS_SHARE,
    RETRY_AFTER_SHARE,
    RETRY_AFTER_VALUES,
    STALL_AT,
    STALL_SHARE,
)
from ops_status.policy import PollPolicy

COMMANDS = {"tables": tables, "seeds": seeds, "sweep": sweep, "fleet": fleet, "cost": cost}


def describe(policy: PollPolicy) -> str:
    return (
        f"PollPolicy(min_delay={policy.min_delay:g}, max_delay={policy.max_delay:g},"
        f" growth={policy.growth:g}, jitter={policy.jitter:g}, lead={policy.lead:g},"
        f" low_read_budget={policy.low_read_budget},"
        f" read_budget_max_delay={policy.read_budget_max_delay:g},"
        f" progress_margin={policy.progress_margin:g},"
        f" progress_lengthen_max={policy.progress_lengthen_max:g})"
    )


def header(policy: PollPolicy) -> None:
    """What every command prints first: the policy, the workload, the machine."""
    print(f"ours = {describe(policy)}")
    print(
        f"workload: durations log-uniform {MIN_DURATION:g} s-{MAX_DURATION / 3600:g} h;"
        f" {RETRY_AFTER_SHARE:.0%} send Retry-After {RETRY_AFTER_VALUES[0]:g}"
        f" or {RETRY_AFTER_VALUES[1]:g} s while running; {FAILURE_SHARE:.0%} fail part-way;"
        f" {PROGRESS_SHARE:.0%} report percentComplete (rate x{PROGRESS_RATE[0]:g}-"
        f"{PROGRESS_RATE[1]:g}, +/-{PROGRESS_NOISE:g} points, {STALL_SHARE:.0%} of them stall"
        f" at {STALL_AT[0]}-{STALL_AT[1]} %)."
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument(
        "--no-hops", action="store_true", help="leave out the per-hop latency of a poll cycle"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; ``tables`` when none is named (the historical command line,
    ``python -m benchmarks.poll_policy [--operations N] [--seed S] [--sweep]``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "tables")
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.poll_policy",
        description="Simulate ARM polling policies on a virtual clock (docs/performance.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        add_common(module.add_parser(commands))
    args = parser.parse_args(args_list)
    began = time.perf_counter()
    header(PollPolicy())
    code = COMMANDS[args.command].run(args)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"\nwall time {time.perf_counter() - began:.1f} s with {args.jobs} process(es);"
        f" load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    return code
