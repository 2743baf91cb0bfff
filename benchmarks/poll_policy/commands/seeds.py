"""``seeds``: every policy's lag as excess over the oracle, min / median / max over seeds."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.poll_policy import report
from benchmarks.poll_policy.runs import Job, run_hop_floors, run_jobs, workload
from benchmarks.poll_policy.simulation import oracle_lags
from benchmarks.poll_policy.workload import HOPS
from ops_status.policy import PollPolicy

# (poller, hop latency?, label)
ROWS = (
    ("ours", True, "ours"),
    ("ours-before", True, "ours before issue 13"),
    ("ours-before", False, "ours before issue 13, no hop latency"),
    ("azure-core-30", True, "azure-core ARMPolling 30 s"),
    ("az-wait", True, "az ... wait (30 s, 1 h)"),
)

HOP_FLOOR = "oracle + Service Bus hops (hop floor)"

RELATIVE: list[report.Column] = [
    ("reads/op", "reads", report.number),
    ("rel p95", "rel_p95", report.percent),
    ("x oracle", "ratio", lambda v: f"{v:.3f}"),
    ("rel excess p95", "excess_rel_p95", report.percent),
    ("... RA", "excess_rel_p95_ra", report.percent),
    ("... no RA", "excess_rel_p95_nora", report.percent),
    ("missed", "missed_pct", lambda v: f"{v:.1f} %"),
]

ABSOLUTE: list[report.Column] = [
    ("lag p95", "lag_p95", report.seconds),
    ("excess p95", "excess_p95", report.seconds),
    ("... RA", "excess_p95_ra", report.seconds),
    ("... no RA", "excess_p95_nora", report.seconds),
]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "seeds", help="excess over the oracle, min/median/max over seeds"
    )
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 1..N")
    parser.add_argument(
        "--engine", choices=("fast", "decide"), default="fast", help="how ours is driven"
    )
    return parser


def collect(jobs: Sequence[Job], processes: int) -> tuple[list[report.Row], dict[int, report.Row]]:
    """Each job's figures against its seed's oracle, and each seed's oracle row."""
    results = run_jobs(jobs, processes)
    rows, oracles = [], {}
    for job, result in zip(jobs, results, strict=True):
        ops = workload(job.count, job.seed, job.fleet, job.subscriptions)
        oracle = oracle_lags(ops)
        oracles.setdefault(job.seed, report.oracle_row(oracle, ops))
        rows.append(report.measure(result, oracle, ops))
    return rows, oracles


def run(args: argparse.Namespace) -> int:
    policy = PollPolicy()
    seeds = range(1, args.seeds + 1)
    print(HOPS.describe() if not args.no_hops else "no hop latency")
    rows_wanted = [r for r in ROWS if r[1] or not args.no_hops]
    jobs = [
        Job(args.operations, seed, key, policy, hops=hops and not args.no_hops, engine=args.engine)
        for key, hops, _ in rows_wanted
        for seed in seeds
    ]
    rows, oracles = collect(jobs, args.jobs)
    per_policy = [
        (label, rows[i * len(seeds) : (i + 1) * len(seeds)])
        for i, (_, _, label) in enumerate(rows_wanted)
    ]
    floors = [] if args.no_hops else run_hop_floors(args.operations, seeds, args.jobs)
    floor_rows = []
    for seed, lags in zip(seeds, floors, strict=False):
        ops = workload(args.operations, seed, False, 1)
        floor_rows.append(report.reference_row(HOP_FLOOR, lags, oracle_lags(ops), ops))
    title = f"Spread, {args.operations} operations, seeds 1-{args.seeds}: min / **median** / max"
    table_rows = [("oracle", list(oracles.values()))]
    table_rows += [(HOP_FLOOR, floor_rows)] if floor_rows else []
    table_rows += per_policy
    print(report.seeds_table(f"{title}; relative lag", table_rows, RELATIVE))
    print(report.seeds_table(f"{title}; absolute lag", table_rows, ABSOLUTE))
    ours, core = per_policy[0][1], per_policy[3 if not args.no_hops else 2][1]
    ratio = report.median(ours, "ratio")
    reads, core_reads = report.median(ours, "reads"), report.median(core, "reads")
    print(
        f"\n  target rel p95 <= 1.10 x oracle (median seed): {ratio:.3f}"
        f" {'met' if ratio <= 1.10 else 'NOT met'}"
    )
    print(
        f"  target reads <= azure-core 30 s (median seed): {reads:.1f} vs {core_reads:.1f}"
        f" {'met' if reads <= core_reads else 'NOT met'}"
    )
    wins = sum(
        o["ratio"] <= 1.10 and o["reads"] <= c["reads"] for o, c in zip(ours, core, strict=True)
    )
    print(f"  seeds meeting both: {wins} of {len(ours)}")
    if floor_rows:
        floor = report.median(floor_rows, "ratio")
        over = statistics.median(
            o["rel_p95"] / f["rel_p95"] for o, f in zip(ours, floor_rows, strict=True)
        )
        print(
            f"  for reference: the hop floor is {floor:.3f} x the oracle (median seed), and"
            f" ours {over:.3f} x the hop floor (median over seeds)"
        )
    return 0
