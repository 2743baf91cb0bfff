"""``cost``: what watching 1,000 operations of the simulated mix costs, and what waits for it.

The simulation gives, per seed, every read ours makes (one Functions execution each: the
intake message and every follow-up), with the time its request left and its answer came
(the modelled ARM round trip), and when each watch's end was seen. The prices turn that
into money; the rules they follow are those of the sources cited in ``SOURCES``:

- Flex Consumption, On Demand: the *instance memory size* is billed while an instance is
  executing; executions that overlap on one instance are billed once; a billable period
  is at least 1,000 ms, then rounded up to 100 ms. Whether the minimum applies per
  execution or per busy period is not documented, so two bounds: ``dense`` merges the
  executions into busy periods of instances carrying at most ``--per-instance`` at once
  (host.json maxConcurrentCalls, per trigger; nearly every execution is a follow-up on the
  polls queue), ``alone`` bills every execution as its own period (1 s each).
- Service Bus Standard: every API call is an operation (64 KB each): per execution the
  host's receive and complete plus our one send (a scheduled follow-up or the terminal
  event: ``docs/performance.md``, "Cost of one check", measured one send per message),
  plus the pipeline's intake send and each subscriber's receive and complete of the event.
- What waits for the end holds pipeline agents, or not: an event-driven consumer holds
  none; the recipes' gate job (docs/pipelines.md) listens from the submission until the
  event or its ``--timeout``; ``az ... wait`` polls until it sees the end or gives up (its
  default hour, or a timeout long enough for the mix). GitHub-hosted runners bill per
  minute (each job rounded up to a whole minute); an Azure Pipelines paid parallel job
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
from benchmarks.poll_policy.simulation import peak_concurrency, simulate
from benchmarks.poll_policy.workload import HOPS, Operation
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
    github_included_free: float = 2_000
    github_included_team: float = 3_000
    """Minutes a month included for private repositories (GitHub Free / Team plans)."""


def flex_month(gb_s: float, executions: float, prices: Prices | None = None) -> float:
    """A month's Flex Consumption On Demand bill after the subscription's free grant."""
    p = prices or PRICES
    return (
        max(gb_s - p.flex_free_gb_s, 0.0) * p.flex_gb_s
        + max(executions - p.flex_free_executions, 0.0) * p.flex_per_million / 1e6
    )


def servicebus_month(operations: float, prices: Prices | None = None) -> float:
    """A month of Service Bus Standard: the base charge (730 h), operations past those included."""
    p = prices or PRICES
    extra = max(operations - p.servicebus_included, 0.0)
    return p.servicebus_base_hour * 730 + extra * p.servicebus_per_million / 1e6


def github_month(minutes: float, included: float, prices: Prices | None = None) -> float:
    """A month of GitHub-hosted Linux minutes after the plan's included ones."""
    p = prices or PRICES
    return max(minutes - included, 0.0) * p.github_linux_minute


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
        default=16,
        help="executions one instance runs at once (host.json maxConcurrentCalls per trigger:"
        " nearly every execution is a follow-up on the polls queue)",
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
        help="measured CPU per execution (benchmarks.cpu_per_watch, Functions path, median"
        " of docs/performance.md's five runs after issue 13: 1.12-2.46 ms)",
    )
    parser.add_argument(
        "--gate-timeout",
        type=float,
        default=3100.0,
        help="the recipes' listen --timeout (docs/pipelines.md)",
    )
    parser.add_argument(
        "--az-long-timeout",
        type=int,
        default=7800,
        help="an az ... wait --timeout long enough for the mix's longest operation",
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
    # 1e-9: a period of exactly 1.2 s is not rounded up to 1.3 s by float noise.
    return max(minimum, math.ceil(period / rounding - 1e-9) * rounding)


Row = dict[str, float]


def _ours(schedule: str) -> OursFast:
    if schedule == "before":
        return OursFast(BEFORE, "ours before issue 13", delay_function=previous_poll_delay)
    return OursFast(PollPolicy(), "ours")


def agent_time(
    operations: Sequence[Operation], held: Sequence[float], missed: int, prefix: str
) -> Row:
    """What agents held from each watch's submission for ``held`` seconds cost: minutes
    (each job rounded up to a whole one, as GitHub bills), dollars, and the agents busy at
    once at the peak (Azure Pipelines parallel jobs)."""
    rounded = float(sum(math.ceil(h / 60.0) for h in held))
    busy = [(op.submit, op.submit + h) for op, h in zip(operations, held, strict=True)]
    return {
        f"{prefix}_min": sum(held) / 60.0,
        f"{prefix}_min_rounded": rounded,
        f"{prefix}_linux_usd": rounded * PRICES.github_linux_minute,
        f"{prefix}_windows_usd": rounded * PRICES.github_windows_minute,
        f"{prefix}_missed_pct": 100.0 * missed / len(held),
        f"{prefix}_jobs": peak_concurrency(busy),
    }


def one_seed(args: argparse.Namespace, seed: int) -> Row:
    operations = workload(args.operations, seed, False, 1)
    ours = simulate(operations, _ours(args.schedule), seed, hops=HOPS, record_calls=True)
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
    p = PRICES
    row: Row = {
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
        "ours_missed_pct": 100.0 * ours.missed / n,
        "span_h": (max(end for _, end in executions) - min(s for s, _ in executions)) / 3600.0,
    }
    # The recipes' gate (docs/pipelines.md) listens from the submission until the event,
    # published one send after the answer that showed the end, or until its --timeout.
    event_at = [
        stop + args.send_s - op.submit for op, stop in zip(operations, ours.stopped, strict=True)
    ]
    gate = [min(t, args.gate_timeout) for t in event_at]
    row |= agent_time(operations, gate, sum(t > args.gate_timeout for t in event_at), "gate")
    for prefix, timeout in (("az", 3600), ("az_long", args.az_long_timeout)):
        poller = AzWait(timeout=timeout)
        waits = simulate(operations, poller, seed, hops=HOPS)
        # azure-cli sleeps its interval once more after the last check before it reports
        # the time-out, so a watch it gives up on holds the agent that much longer.
        held = [
            stop - op.submit + (poller.interval if math.isinf(lag) else 0.0)
            for op, stop, lag in zip(operations, waits.stopped, waits.lag, strict=True)
        ]
        row |= agent_time(operations, held, waits.missed, prefix)
    return row


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
    print("| ops-status on Flex Consumption + Service Bus Standard | per 1,000 watches |")
    print("|---|---|")
    for label, value in ours:
        print(f"| {label} | {value} |")
    print()

    def mid(key: str, fmt: Callable[[float], str], scale: float = 1.0) -> str:
        values = sorted(r[key] * scale for r in rows)
        return f"**{fmt(statistics.median(values))}** ({fmt(values[0])}-{fmt(values[-1])})"

    consumers = [
        ("an event-driven consumer: no agent waits (a subscriber acts on the event)", None),
        (
            f"the recipes' gate job, listening from submission (`listen --timeout"
            f" {args.gate_timeout:g}`)",
            "gate",
        ),
        ("`az ... wait` (30 s, its default 1 h timeout)", "az"),
        (f"`az ... wait --timeout {args.az_long_timeout}`", "az_long"),
    ]
    print(
        "| what waits for the end | agent minutes | billed minutes (each job rounded up) |"
        f" GitHub Linux ${PRICES.github_linux_minute}/min | GitHub Windows"
        f" ${PRICES.github_windows_minute}/min | agents busy at once (Azure Pipelines"
        f" parallel jobs, ${PRICES.pipelines_parallel_job_month:g}/month each) |"
        " outcome not learnt |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, prefix in consumers:
        if prefix is None:
            print(f"| {label} | 0 | 0 | $0 | $0 | 0 | 0 % |")
            continue
        print(
            f"| {label} | {mid(prefix + '_min', count, per)}"
            f" | {mid(prefix + '_min_rounded', count, per)}"
            f" | {mid(prefix + '_linux_usd', usd, per)}"
            f" | {mid(prefix + '_windows_usd', usd, per)}"
            f" | {mid(prefix + '_jobs', count)}"
            f" | {mid(prefix + '_missed_pct', one)} % |"
        )
    print()
    dense = statistics.median(r["dense_gb_s"] for r in rows) / n
    alone = statistics.median(r["alone_gb_s"] for r in rows) / n
    execs = statistics.median(r["executions"] for r in rows) / n
    ops = statistics.median(r["sb_ops"] for r in rows) / n
    free = min(PRICES.flex_free_gb_s / dense, PRICES.flex_free_executions / execs)
    print(
        f"Free grant ({PRICES.flex_free_gb_s:,.0f} GB-s + {PRICES.flex_free_executions:,.0f}"
        f" executions a month per subscription): about {free:,.0f} watches a month at the"
        f" dense rate ({dense:.1f} GB-s, {execs:.1f} executions each), about"
        f" {PRICES.flex_free_gb_s / alone:,.0f} at the alone rate ({alone:.1f} GB-s each)."
    )
    minutes = statistics.median(r["az_min_rounded"] for r in rows) / n * 1000
    ours_low = flex_month(dense * 1000, execs * 1000) + servicebus_month(ops * 1000)
    ours_high = flex_month(alone * 1000, execs * 1000) + servicebus_month(ops * 1000)
    print(
        f"1,000 watches a month, all in: ops-status ${ours_low:.2f}-${ours_high:.2f} (Service"
        f" Bus Standard's base charge, ${PRICES.servicebus_base_hour}/h for 730 h, whatever the"
        " load; Flex past its free grant; operations past the 13M included);"
        f" `az ... wait` on GitHub-hosted Linux ${github_month(minutes, 0):.2f} before, and"
        f" ${github_month(minutes, PRICES.github_included_free):.2f} /"
        f" ${github_month(minutes, PRICES.github_included_team):.2f} after the"
        f" {PRICES.github_included_free:,.0f} / {PRICES.github_included_team:,.0f} minutes"
        " a month the Free / Team plans include for private repositories (public: free)."
    )
    span = statistics.median(r["span_h"] for r in rows)
    print(f"workload span (first to last execution), median: {span:.1f} h")
    print("\nPrice sources:")
    for source in SOURCES:
        print(f"- {source}")
    return 0
