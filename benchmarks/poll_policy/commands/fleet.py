"""``fleet``: thousands of watches on one subscription's read bucket.

Default: 10,000 operations on one subscription, then the same 10,000 spread over 20
subscriptions watched by the same principal (ARM's limits are per subscription and
principal, so that is 20 buckets). ``--capacity`` adds what one subscription carries at
each ``read_budget_max_delay``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from benchmarks.poll_policy import report
from benchmarks.poll_policy.commands.seeds import collect
from benchmarks.poll_policy.runs import Job, workload
from benchmarks.poll_policy.simulation import peak_concurrency
from benchmarks.poll_policy.workload import (
    FLEET_WRITE_BURST,
    FLEET_WRITE_RATE,
    HOPS,
    NO_HOPS,
    Operation,
)
from ops_status.policy import PollPolicy

POLLERS = ("ours", "ours-before", "azure-core-30", "az-wait", "fair-share")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "fleet", help="10,000 watches on one subscription (and on 20)"
    )
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument(
        "--subscriptions", default="1,20", help="comma-separated subscription counts"
    )
    parser.add_argument("--seeds", default="7", help="comma-separated seeds")
    parser.add_argument(
        "--engine",
        choices=("fast", "decide"),
        default="fast",
        help="how ours is driven (the same figures: tests/unit/test_poll_policy_benchmark.py)",
    )
    parser.add_argument(
        "--capacity", action="store_true", help="also: fleet sizes x read_budget_max_delay"
    )
    parser.add_argument("--sizes", default="2000,5000,10000", help="with --capacity")
    parser.add_argument("--ceilings", default="120,240,400", help="with --capacity")
    return parser


def peak_in_flight(operations: Sequence[Operation]) -> int:
    """Most watches in flight at once (submitted, not yet ended), over all subscriptions."""
    return peak_concurrency([(op.submit, op.end) for op in operations])


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def run(args: argparse.Namespace) -> int:
    policy, hops = PollPolicy(), not args.no_hops
    print((HOPS if hops else NO_HOPS).describe())
    seeds = _ints(args.seeds)
    for subscriptions in _ints(args.subscriptions):
        jobs = [
            Job(
                args.operations,
                seed,
                key,
                policy,
                fleet=True,
                subscriptions=subscriptions,
                hops=hops,
                engine=args.engine,
            )
            for key in POLLERS
            for seed in seeds
        ]
        rows, _ = collect(jobs, args.jobs)
        n = len(seeds)
        peaks = [peak_in_flight(workload(args.operations, s, True, subscriptions)) for s in seeds]
        title = (
            f"Fleet: {args.operations} operations on {subscriptions} subscription(s), one"
            f" principal, each subscription's starts paced by its write bucket"
            f" ({FLEET_WRITE_BURST} at once, then {FLEET_WRITE_RATE:g}/s); at most"
            f" {max(peaks):,} in flight at once; seeds {args.seeds}"
        )
        per_policy = [
            (POLLER_NAMES[key], rows[i * n : (i + 1) * n]) for i, key in enumerate(POLLERS)
        ]
        if n == 1:
            print(report.table(title, [(k, r[0]) for k, r in per_policy], report.FLEET_COLUMNS))
        else:
            title += ": min / **median** / max"
            print(report.seeds_table(title, per_policy, report.FLEET_COLUMNS))
        ours = per_policy[0][1]
        worst = max(r["throttled_pct"] for r in ours)
        missed = max(r["missed_pct"] for r in ours)
        print(
            f"  target 429s < 1 % of reads (every seed): {worst:.2f} %"
            f" {'met' if worst < 1.0 else 'NOT met'}; every operation detected:"
            f" {'met' if missed == 0 else 'NOT met'}"
        )
    if args.capacity:
        capacity(args, policy, hops)
    return 0


POLLER_NAMES = {
    "ours": "ours",
    "ours-before": "ours before issue 13",
    "azure-core-30": "azure-core ARMPolling 30 s",
    "az-wait": "az ... wait (30 s, 1 h)",
    "fair-share": "(fleet-aware reference)",
}


def capacity(args: argparse.Namespace, policy: PollPolicy, hops: bool) -> None:
    """Ours on one subscription: fleet size x read_budget_max_delay."""
    seeds, sizes, ceilings = _ints(args.seeds), _ints(args.sizes), _ints(args.ceilings)
    combos = [(size, ceiling) for ceiling in ceilings for size in sizes]
    jobs = [
        Job(
            size,
            seed,
            "ours",
            replace(policy, read_budget_max_delay=float(ceiling)),
            fleet=True,
            hops=hops,
            engine="fast",
        )
        for size, ceiling in combos
        for seed in seeds
    ]
    rows, _ = collect(jobs, args.jobs)
    n = len(seeds)
    print(
        f"\nOne subscription, ours at each read_budget_max_delay (seeds {args.seeds};"
        " 429 share: median, worst seed; lag: medians)\n"
    )
    print("| read_budget_max_delay | operations | in flight at most | 429s | lag p50 | lag p95 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, (size, ceiling) in enumerate(combos):
        chunk = rows[i * n : (i + 1) * n]
        peak = max(peak_in_flight(workload(size, s, True, 1)) for s in seeds)
        share = [r["throttled_pct"] for r in chunk]
        print(
            f"| {ceiling} s | {size:,} | {peak:,} | {statistics.median(share):.2f} %"
            f" ({max(share):.2f} %) | {statistics.median(r['lag_p50'] for r in chunk):.0f} s"
            f" | {statistics.median(r['lag_p95'] for r in chunk):.0f} s |"
        )
