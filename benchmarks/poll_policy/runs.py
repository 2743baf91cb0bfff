"""Jobs: one (workload, poller) simulation each, run in parallel processes."""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from benchmarks.poll_policy.pollers import (
    AzureCore,
    AzWait,
    FairShare,
    Ours,
    OursFast,
    Poller,
)
from benchmarks.poll_policy.previous import BEFORE, previous_poll_delay
from benchmarks.poll_policy.simulation import Result, hop_floor_lags, simulate
from benchmarks.poll_policy.workload import HOPS, NO_HOPS, Operation, make_workload
from ops_status.policy import PollPolicy

POLLERS = {
    "ours": "ours",
    "ours-no-progress": "ours, percentComplete off",
    "ours-before": "ours before issue 13 (3 s, 0.08, old budget rule)",
    "azure-core-30": "azure-core ARMPolling 30 s",
    "azure-core-10": "azure-core ARMPolling 10 s",
    "az-wait": "az ... wait (30 s, 1 h)",
    "fair-share": "(fleet-aware reference)",
}


def build_poller(key: str, policy: PollPolicy, *, engine: str = "decide") -> Poller:
    ours = Ours if engine == "decide" else OursFast
    if key == "ours":
        return ours(policy, POLLERS[key])
    if key == "ours-no-progress":
        return ours(replace(policy, progress_projection=False), POLLERS[key])
    if key == "ours-before":
        # The old poll_delay itself (previous.py); decide is unchanged since, and the fast
        # engine passes poll_delay exactly what decide passes.
        return OursFast(BEFORE, POLLERS[key], delay_function=previous_poll_delay)
    if key == "azure-core-30":
        return AzureCore(30.0)
    if key == "azure-core-10":
        return AzureCore(10.0)
    if key == "az-wait":
        return AzWait()
    if key == "fair-share":
        return FairShare(policy)
    raise ValueError(key)


@dataclass(frozen=True)
class Job:
    count: int
    seed: int
    poller: str
    policy: PollPolicy = field(default_factory=PollPolicy)
    fleet: bool = False
    subscriptions: int = 1
    hops: bool = True
    engine: str = "decide"
    """"decide" (Ours) or "fast" (OursFast): the same figures, the second faster."""
    label: str = ""
    """Shown instead of the poller's name (sweeps)."""


@functools.lru_cache(maxsize=4)
def workload(count: int, seed: int, fleet: bool, subscriptions: int) -> tuple[Operation, ...]:
    return tuple(make_workload(count, seed, fleet=fleet, subscriptions=subscriptions))


def run_job(job: Job) -> Result:
    operations = workload(job.count, job.seed, job.fleet, job.subscriptions)
    poller = build_poller(job.poller, job.policy, engine=job.engine)
    result = simulate(operations, poller, job.seed, hops=HOPS if job.hops else NO_HOPS)
    if job.label:
        result.name = job.label
    if result.early or not result.outcomes_ok:
        raise AssertionError(f"{result.name}: early reads or wrong outcomes ({job})")
    return result


def run_jobs(jobs: Sequence[Job], processes: int) -> list[Result]:
    """Each job is an independent simulation: results do not depend on ``processes``."""
    if processes <= 1:
        return [run_job(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(run_job, jobs, chunksize=1)


def hop_floor_job(key: tuple[int, int]) -> list[float]:
    """``hop_floor_lags`` of the spread workload (count, seed), with the hop latencies."""
    count, seed = key
    return hop_floor_lags(workload(count, seed, False, 1), seed, HOPS)


def run_hop_floors(count: int, seeds: Sequence[int], processes: int) -> list[list[float]]:
    keys = [(count, seed) for seed in seeds]
    if processes <= 1:
        return [hop_floor_job(key) for key in keys]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(hop_floor_job, keys, chunksize=1)
