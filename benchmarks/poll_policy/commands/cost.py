"""``cost``: what watching 1,000 operations of the simulated mix costs, against ``az ... wait``.

The simulation gives, per seed, every read ours makes (one Functions execution each: the
intake message and every follow-up), with the time its request left and its answer came
(the modelled ARM round trip), and how long ``az ... wait`` holds a pipeline agent on the
same operations (until it sees the end, or gives up after an hour). The prices turn that
into money; the rules they follow are those of the sources cited in ``PRICES``:

- Flex Consumption, On Demand: the *instance memory size* is billed while an instance is
  executing; executions that overlap on one instance are billed once; a billable period
  is at least 1,000 ms, then rounded up to 100 ms. Two bounds: ``dense`` merges the
  executions into active periods of instances carrying at most ``--per-instance`` at once
  (host.json maxConcurrentCalls 16 x 2 triggers); ``alone`` bills every execution as its
  own period (1 s each), which is what a thin trickle of watches pays.
- Service Bus Standard: every API call is an operation (64 KB each): per execution the
  host's receive and complete plus our one send (a scheduled follow-up or the terminal
  event: ``docs/performance.md``, "Cost of one check", measured one send per message),
  plus the pipeline's intake send and each subscriber's receive and complete of the event.
- ``az ... wait``: agent minutes from submission until it stops; GitHub-hosted runners bill
  per minute (each job rounded up to a whole minute); an Azure Pipelines paid parallel job
  has unlimited minutes but is held for the whole wait, so what it costs is parallel jobs.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.poll_policy.pollers import AzWait, OursFast
from benchmarks.poll_policy.previous import BEFORE, previous_poll_delay
from benchmarks.poll_policy.runs import workload
from benchmarks.poll_policy.simulation import simulate
from benchmarks.poll_policy.workload import HOPS
from ops_status.policy import PollPolicy


@dataclass(frozen=True)
class Prices:
    """Pay-as-you-go list prices in USD, before free grants, as compiled on ``compiled``."""

    compiled: str = "2026-12-02"
    flex_gb_s: float = 0.000026
    """Flex Consumption On Demand execution time, per GB-s."""
    flex_per_million: float = 0.40
    """Flex Consumption On Demand, per million executions."""
    flex_free_gb_s: float = 100_000
    flex_free_executions: float = 250_000
    """Monthly free grant per subscription, On Demand only."""
    flex_min_period: float = 1.0
    flex_rounding: float = 0.1
    servicebus_per_million: float = 0.80
    """Standard tier, operations beyond the 13 million included per month."""
    servicebus_included: float = 13_000_000
    servicebus_base_hour: float = 0.0135
    github_linux_minute: float = 0.006
    """GitHub-hosted standard Linux 2-core runner, from 2026-01-01 (was 0.008)."""
    github_windows_minute: float = 0.010
    pipelines_parallel_job_month: float = 40.0
    """Azure Pipelines: one more Microsoft-hosted parallel job, unlimited minutes."""


PRICES = Prices()

# Where each price comes from; docs/performance.md ("What a watch costs") gives the quotes.
SOURCES = (
    "Flex Consumption rates and rules: learn.microsoft.com/azure/azure-functions/"
    "functions-consumption-costs (ms.date 2025-02-10: $0.000026/GB-s and $0.40/million as its"
    " worked example's rates, overlapping executions billed once) and flex-consumption-plan"
    " (ms.date 2025-05-12: configured instance memory billed; 1,000 ms minimum, then 100 ms);"
    " free grant: azure.microsoft.com/pricing/details/functions/ as quoted 2026-10-02",
    "Service Bus Standard: azure.microsoft.com/pricing/details/service-bus/ (13M operations"
    " included, 'an operation is any API call'); USD figures ($0.0135/h base, $0.80 per"
    " million) from secondary copies of that page: check the Retail Prices API",
    "GitHub Actions: github/docs data/reusables/billing/actions-standard-runner-prices.md"
    " (Linux 2-core $0.008 -> $0.006/min from 2026-01-01), per job rounded up to a minute",
    "Azure Pipelines: learn.microsoft.com/azure/devops/pipelines/licensing/concurrent-jobs"
    " (ms.date 2026-06-19: paid tier, no monthly minute limit); $40 per parallel job from"
    " the Azure DevOps pricing page as quoted by the Azure Architecture Center",
)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "cost", help="what 1,000 watches cost on Flex Consumption vs az ... wait agent minutes"
    )
    parser.add_argument("--operations", type=int, default=1_000)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N")
    parser.add_argument(
        "--instance-mb", type=int, default=2048, help="Flex instance memory (the template's)"
    )
    parser.add_argument(
        "--per-instance",
        type=int,
        default=32,
        help="executions one instance runs at once (host.json maxConcurrentCalls x 2 triggers)",
    )
    parser.add_argument(
        "--send-s",
        type=float,
        default=0.03,
        help="seconds an execution spends after ARM answers (our send; an assumption)",
    )
    parser.add_argument(
        "--cpu-ms",
        type=float,
        default=1.56,
        help="measured CPU per execution (benchmarks.cpu_per_watch, Functions path, median)",
    )
    parser.add_argument(
        "--schedule",
        choices=("ours", "before"),
        default="ours",
        help="the product's schedule, or the one before issue 13 (previous.py)",
    )
    parser.add_argument(
        "--subscribers", type=int, default=1, help="topic subscriptions that get each event"
    )
    return parser


def billed_seconds(
    calls: Sequence[tuple[float, float]],
    per_instance: int,
    *,
    minimum: float = PRICES.flex_min_period,
    rounding: float = PRICES.flex_rounding,
) -> float:
    """Instance-seconds billed for executions spanning ``calls`` (start, end).

    The k-th instance is busy while more than (k - 1) x ``per_instance`` executions run at
    once; each of its busy periods is billed at least ``minimum``, then rounded up to
    ``rounding``. Overlapping executions on one instance are billed once.
    """
    events = sorted([(start, 1) for start, _ in calls] + [(end, -1) for _, end in calls])
    opened: dict[int, float] = {}  # instance number -> start of its busy period
    total, running = 0.0, 0
    for moment, step in events:
        before = running
        running += step
        needed_before = math.ceil(before / per_instance)
        needed_after = math.ceil(running / per_instance)
        for instance in range(needed_before + 1, needed_after + 1):
            opened[instance] = moment
        for instance in range(needed_after + 1, needed_before + 1):
            total += _billable(moment - opened.pop(instance), minimum, rounding)
    return total


def billed_alone(
    calls: Sequence[tuple[float, float]],
    *,
    minimum: float = PRICES.flex_min_period,
    rounding: float = PRICES.flex_rounding,
) -> float:
    """Instance-seconds when no two executions share a billable period."""
    return sum(_billable(end - start, minimum, rounding) for start, end in calls)


def _billable(period: float, minimum: float, rounding: float) -> float:
    # 1e-9: a period of exactly 0.3 s is not rounded up to 0.4 s by float noise.
    return max(minimum, math.ceil(period / rounding - 1e-9) * rounding)


def peak_concurrency(intervals: Sequence[tuple[float, float]]) -> int:
    """Most intervals open at once (an end at the instant of a start closes first)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


Row = dict[str, float]


def _ours(schedule: str) -> OursFast:
    if schedule == "before":
        return OursFast(BEFORE, "ours before issue 13", delay_function=previous_poll_delay)
    return OursFast(PollPolicy(), "ours")


def one_seed(args: argparse.Namespace, seed: int) -> Row:
    operations = workload(args.operations, seed, False, 1)
    ours = simulate(
        operations,
        _ours(args.schedule),
        seed,
        hops=HOPS,
        record_calls=True,
    )
    assert ours.calls is not None
    assert ours.outcomes_ok
    assert ours.early == 0
    tail = args.send_s + args.cpu_ms / 1000.0
    executions = [(start, end + tail) for start, end in ours.calls]
    gb = args.instance_mb / 1024.0
    dense_s = billed_seconds(executions, args.per_instance)
    alone_s = billed_alone(executions)
    n = len(operations)
    count = len(executions)
    servicebus_ops = 3 * count + n * (1 + 2 * args.subscribers)
    waits = simulate(operations, AzWait(), seed, hops=HOPS)
    held = [stop - op.submit for op, stop in zip(operations, waits.stopped, strict=True)]
    agent_minutes = sum(held) / 60.0
    rounded_minutes = float(sum(math.ceil(h / 60.0) for h in held))
    p = PRICES
    return {
        "executions": count,
        "exec_s": sum(end - start for start, end in executions),
        "dense_s": dense_s,
        "alone_s": alone_s,
        "dense_gb_s": dense_s * gb,
        "alone_gb_s": alone_s * gb,
        "dense_usd": dense_s * gb * p.flex_gb_s + count * p.flex_per_million / 1e6,
        "alone_usd": alone_s * gb * p.flex_gb_s + count * p.flex_per_million / 1e6,
        "exec_usd": count * p.flex_per_million / 1e6,
        "peak_executions": peak_concurrency(executions),
        "cpu_s": count * args.cpu_ms / 1000.0,
        "sb_ops": servicebus_ops,
        "sb_usd": servicebus_ops * p.servicebus_per_million / 1e6,
        "agent_min": agent_minutes,
        "agent_min_rounded": rounded_minutes,
        "github_usd": rounded_minutes * p.github_linux_minute,
        "github_windows_usd": rounded_minutes * p.github_windows_minute,
        "parallel_jobs": peak_concurrency(
            [(op.submit, stop) for op, stop in zip(operations, waits.stopped, strict=True)]
        ),
        "az_missed_pct": 100.0 * waits.missed / n,
        "ours_missed_pct": 100.0 * ours.missed / n,
        "span_h": (max(end for _, end in executions) - min(s for s, _ in executions)) / 3600.0,
    }


def run(args: argparse.Namespace) -> int:
    seeds = range(1, args.seeds + 1)
    rows = [one_seed(args, seed) for seed in seeds]
    n = args.operations
    per = 1000.0 / n

    def spread(key: str, fmt: Callable[[float], str], scale: float = 1.0) -> str:
        values = sorted(r[key] * scale for r in rows)
        return f"{fmt(values[0])} / **{fmt(statistics.median(values))}** / {fmt(values[-1])}"

    def usd(v: float) -> str:
        return f"${v:.4f}" if v < 1 else f"${v:,.2f}"

    def count(v: float) -> str:
        return f"{v:,.0f}"

    def one(v: float) -> str:
        return f"{v:,.1f}"

    print(
        f"\nWhat {n:,} watches of the spread mix cost, {args.schedule} schedule (submitted over"
        f" the first hour, hops modelled), per 1,000 watches, seeds 1-{args.seeds}:"
        f" min / **median** / max."
        f" Prices compiled {PRICES.compiled}, USD, pay-as-you-go, before free grants."
        f" Instance {args.instance_mb} MB, at most {args.per_instance} executions per instance,"
        f" {args.send_s:g} s of send and {args.cpu_ms:g} ms of CPU after each ARM answer.\n"
    )
    ours = [
        ("executions (one per ARM read)", spread("executions", count, per)),
        ("execution time, summed", spread("exec_s", count, per) + " s"),
        (
            f"CPU, summed (measured {args.cpu_ms:g} ms per execution)",
            spread("cpu_s", one, per) + " s",
        ),
        ("executions at once, at most", spread("peak_executions", count)),
        ("billed instance time, dense (overlaps merged)", spread("dense_s", count, per) + " s"),
        (
            "billed instance time, every execution alone (1 s minimum)",
            spread("alone_s", count, per) + " s",
        ),
        ("GB-s, dense", spread("dense_gb_s", count, per)),
        ("GB-s, every execution alone", spread("alone_gb_s", count, per)),
        ("Functions: executions", spread("exec_usd", usd, per)),
        ("Functions: total, dense", spread("dense_usd", usd, per)),
        ("Functions: total, every execution alone", spread("alone_usd", usd, per)),
        (
            f"Service Bus operations (3 per execution, the intake send,"
            f" {args.subscribers} subscriber(s))",
            spread("sb_ops", count, per),
        ),
        (
            f"Service Bus: those operations at ${PRICES.servicebus_per_million:.2f}/million"
            " (only past the 13M included a month)",
            spread("sb_usd", usd, per),
        ),
        ("ops-status missed", spread("ours_missed_pct", one) + " %"),
    ]
    waits = [
        (
            "agent minutes held (until the end is seen, or the 1 h give-up)",
            spread("agent_min", count, per),
        ),
        (
            "the same, each wait rounded up to a whole minute",
            spread("agent_min_rounded", count, per),
        ),
        (
            f"GitHub-hosted Linux 2-core (${PRICES.github_linux_minute}/min)",
            spread("github_usd", usd, per),
        ),
        (
            f"GitHub-hosted Windows 2-core (${PRICES.github_windows_minute}/min)",
            spread("github_windows_usd", usd, per),
        ),
        (
            "waits in flight at once, at most (Azure Pipelines parallel jobs to run them"
            f" unqueued, ${PRICES.pipelines_parallel_job_month:g}/month each)",
            spread("parallel_jobs", count),
        ),
        ("missed (outlasted the 1 h give-up)", spread("az_missed_pct", one) + " %"),
    ]
    for title, table in (
        ("ops-status on Flex Consumption + Service Bus Standard", ours),
        ("`az ... wait` (30 s, 1 h) on a hosted agent, same operations", waits),
    ):
        print(f"| {title} | per 1,000 watches |\n|---|---|")
        for label, value in table:
            print(f"| {label} | {value} |")
        print()
    dense = statistics.median(r["dense_gb_s"] for r in rows) / n
    execs = statistics.median(r["executions"] for r in rows) / n
    free = min(PRICES.flex_free_gb_s / dense, PRICES.flex_free_executions / execs)
    print(
        f"Free grant ({PRICES.flex_free_gb_s:,.0f} GB-s + {PRICES.flex_free_executions:,.0f}"
        f" executions a month per subscription): about {free:,.0f} watches a month at the"
        f" dense rate ({dense:.1f} GB-s, {execs:.1f} executions each). Service Bus Standard's"
        f" base charge (${PRICES.servicebus_base_hour}/h, about"
        f" ${PRICES.servicebus_base_hour * 730:.2f} a month) is the same whatever the load."
    )
    span = statistics.median(r["span_h"] for r in rows)
    print(f"workload span (first to last execution), median: {span:.1f} h")
    print("\nPrice sources:")
    for source in SOURCES:
        print(f"- {source}")
    return 0
