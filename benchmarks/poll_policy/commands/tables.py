"""``tables`` (the default command): one seed, every poller, the real ``decide``."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.poll_policy import report
from benchmarks.poll_policy.runs import Job, run_jobs, workload
from benchmarks.poll_policy.simulation import oracle_lags
from benchmarks.poll_policy.workload import (
    FLEET_WRITE_BURST,
    FLEET_WRITE_RATE,
    HOPS,
    NO_HOPS,
    SUBSCRIPTIONS,
)
from ops_status.policy import PollPolicy

SPREAD_POLLERS = (
    "ours",
    "ours-no-progress",
    "ours-before",
    "azure-core-30",
    "azure-core-10",
    "az-wait",
)
FLEET_POLLERS = ("ours", "azure-core-30", "azure-core-10", "az-wait", "fair-share")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "tables", help="one seed, every poller (the default)"
    )
    parser.add_argument("--operations", type=int, default=10_000, help="spread workload size")
    parser.add_argument("--fleet", type=int, default=2_000, help="fleet workload size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sweep", action="store_true", help="also run the sweep command")
    return parser


def targets(ours: report.Row, core: report.Row) -> list[tuple[str, bool, str]]:
    return [
        (
            "rel p95 <= 1.10 x the oracle's",
            ours["ratio"] <= 1.10,
            f"{ours['ratio']:.3f} x ({100 * ours['rel_p95']:.1f} % vs"
            f" {100 * ours['oracle_rel_p95']:.1f} %)",
        ),
        (
            "reads <= azure-core ARMPolling 30 s",
            ours["reads"] <= core["reads"],
            f"{ours['reads']:.1f} vs {core['reads']:.1f}",
        ),
        ("p95 lag <= 30 s", ours["lag_p95"] <= 30.0, report.seconds(ours["lag_p95"])),
        ("no read before Retry-After permits", ours["early"] == 0, f"{ours['early']:.0f} early"),
    ]


def print_targets(checks: list[tuple[str, bool, str]]) -> None:
    for name, met, value in checks:
        print(f"  target {name:<40} {'met' if met else 'NOT met':<8} ({value})")


def run(args: argparse.Namespace) -> int:
    policy, hops = PollPolicy(), not args.no_hops
    print((HOPS if hops else NO_HOPS).describe())
    spread = [Job(args.operations, args.seed, key, policy, hops=hops) for key in SPREAD_POLLERS]
    fleet = [
        Job(args.fleet, args.seed, key, policy, fleet=True, hops=hops) for key in FLEET_POLLERS
    ]
    results = run_jobs([*spread, *fleet], args.jobs)
    ops = workload(args.operations, args.seed, False, 1)
    oracle = oracle_lags(ops)
    rows = [("oracle", report.oracle_row(oracle, ops))]
    rows += [(r.name, report.measure(r, oracle, ops)) for r in results[: len(spread)]]
    print(
        report.table(
            f"Spread: {args.operations} operations over 1 h on {SUBSCRIPTIONS} subscriptions"
            f" (seed {args.seed})",
            rows,
            report.SPREAD_COLUMNS,
        )
    )
    print_targets(targets(rows[1][1], rows[4][1]))
    fleet_ops = workload(args.fleet, args.seed, True, 1)
    fleet_oracle = oracle_lags(fleet_ops)
    fleet_rows = [
        (r.name, report.measure(r, fleet_oracle, fleet_ops)) for r in results[len(spread) :]
    ]
    print(
        report.table(
            f"Fleet: {args.fleet} operations on ONE subscription, started as fast as ARM's"
            f" write bucket allows ({FLEET_WRITE_BURST} at once, then {FLEET_WRITE_RATE:g}/s;"
            f" seed {args.seed})",
            fleet_rows,
            report.FLEET_COLUMNS,
        )
    )
    ours = fleet_rows[0][1]
    print_targets(
        [
            ("429s < 1 % of reads", ours["throttled_pct"] < 1.0, f"{ours['throttled_pct']:.2f} %"),
            ("every operation detected", ours["missed_pct"] == 0, f"{ours['missed_pct']:.1f} %"),
        ]
    )
    print(
        "  (fleet-aware reference: knows the number of watches in flight and spaces them at"
        " 90 % of the refill rate; no real poller has that knowledge)"
    )
    if args.sweep:
        from benchmarks.poll_policy.commands import sweep

        sweep.run(sweep.defaults(args))
    return 0
