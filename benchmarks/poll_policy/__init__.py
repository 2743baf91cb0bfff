"""Polling policy benchmark: a simulated ARM, a virtual clock and the real decision code.

Run: ``python -m benchmarks.poll_policy [tables|seeds|sweep|fleet] [options]`` (``tables``
when no command is named: ``python -m benchmarks.poll_policy [--operations 10000]
[--seed 7] [--sweep]`` works as it always did). docs/performance.md shows the figures.

Every poller reads the same simulated operations from the same simulated ARM, and pays
the same simulated hop latencies:

- ``workload``: the operations (durations, Retry-After, progress, failures) and ``Hops``;
- ``arm``: a read bucket per subscription and principal, and each operation's status;
- ``pollers``: ours (the real ``decide``, or ``poll_delay`` with ``decide``'s arguments)
  and the anchors (azure-core ``ARMPolling``, ``az ... wait``, a fleet-aware reference);
- ``previous``: the schedule before issue 13, frozen, for the "before" rows;
- ``simulation``: one event-queue run, and the oracle no compliant poller can beat;
- ``report``: the figures against the oracle, as Markdown tables;
- ``runs``: jobs in parallel processes; ``cli`` and ``commands/``: the command line.

Time is virtual: a heap of ARM answer times, no tick loop, no sleeping. Same seed, same
figures.
"""

from benchmarks.poll_policy.arm import Answer, Arm
from benchmarks.poll_policy.pollers import (
    AzureCore,
    AzWait,
    Eager,
    FairShare,
    GaveUp,
    Ours,
    OursFast,
    Poller,
)
from benchmarks.poll_policy.previous import BEFORE, previous_poll_delay
from benchmarks.poll_policy.report import measure, oracle_row
from benchmarks.poll_policy.runs import Job, run_job, run_jobs
from benchmarks.poll_policy.simulation import Result, oracle_lags, percentile, simulate
from benchmarks.poll_policy.workload import HOPS, NO_HOPS, Hops, Operation, make_workload

__all__ = [
    "BEFORE",
    "HOPS",
    "NO_HOPS",
    "Answer",
    "Arm",
    "AzWait",
    "AzureCore",
    "Eager",
    "FairShare",
    "GaveUp",
    "Hops",
    "Job",
    "Operation",
    "Ours",
    "OursFast",
    "Poller",
    "Result",
    "make_workload",
    "measure",
    "oracle_lags",
    "oracle_row",
    "percentile",
    "previous_poll_delay",
    "run_job",
    "run_jobs",
    "simulate",
]
