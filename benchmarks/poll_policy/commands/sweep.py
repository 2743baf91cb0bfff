"""``sweep``: ours over a grid of its schedule knobs, medians over a few seeds."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from typing import Any

from benchmarks.poll_policy.commands.seeds import collect
from benchmarks.poll_policy.runs import Job
from ops_status.policy import PollPolicy

# (min_delay, growth, lead, max_delay): the grid around the defaults, then single moves.
GRID = [
    *((m, g, 1.0, 32.0) for m in (1.0, 2.0, 3.0) for g in (0.08, 0.1, 0.12)),
    (1.0, 0.1, 0.0, 32.0),
    (2.0, 0.1, 0.0, 32.0),
    (1.0, 0.1, 1.5, 32.0),
    (1.0, 0.1, 1.0, 30.0),
    (1.0, 0.1, 1.0, 35.0),
    (1.0, 0.09, 1.0, 34.0),
    (1.0, 0.085, 1.0, 36.0),
    (3.0, 0.08, 0.0, 30.0),
]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "sweep", help="ours over min_delay x growth x lead x max_delay"
    )
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    return parser


def defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The sweep's own defaults, for ``tables --sweep``."""
    return argparse.Namespace(
        operations=args.operations, seeds=3, jobs=args.jobs, no_hops=args.no_hops
    )


def run(args: argparse.Namespace) -> int:
    base, hops, seeds = PollPolicy(), not args.no_hops, range(1, args.seeds + 1)
    policies = [
        replace(base, min_delay=m, growth=g, lead=lead, max_delay=x) for m, g, lead, x in GRID
    ]
    jobs = [Job(args.operations, s, "azure-core-30", base, hops=hops) for s in seeds]
    jobs += [
        Job(args.operations, s, "ours", p, hops=hops, engine="fast")
        for p in policies
        for s in seeds
    ]
    rows, _ = collect(jobs, args.jobs)
    n = len(seeds)
    core = statistics.median(r["reads"] for r in rows[:n])
    print(
        f"\nSweep of ours on the spread workload ({args.operations} operations, medians over"
        f" seeds 1-{args.seeds}, {'with' if hops else 'without'} hop latency; jitter"
        f" {base.jitter:g}, other knobs at their defaults; azure-core 30 s reads {core:.1f}/op)\n"
    )
    print(
        "| min | growth | lead | max | reads/op | x azure-core | lag p95 | rel p95 | x oracle"
        " | rel p95 no RA |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, policy in enumerate(policies):
        chunk = rows[n * (i + 1) : n * (i + 2)]

        def med(key: str, rows_of: list[dict[str, float]] = chunk) -> float:
            return float(statistics.median(r[key] for r in rows_of))

        print(
            f"| {policy.min_delay:g} | {policy.growth:g} | {policy.lead:g} | {policy.max_delay:g}"
            f" | {med('reads'):.1f} | {med('reads') / core:.2f} | {med('lag_p95'):.1f} s"
            f" | {100 * med('rel_p95'):.1f} % | {med('ratio'):.3f}"
            f" | {100 * med('rel_p95_nora'):.1f} % |"
        )
    return 0
