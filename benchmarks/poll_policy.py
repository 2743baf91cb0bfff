"""Polling policy benchmark: a simulated ARM, a virtual clock and the real decision code.

Run: ``python -m benchmarks.poll_policy [--operations 10000] [--seed 7] [--sweep]``.

Every poller reads the same simulated operations from the same simulated ARM:

- "ours" drives the real ``ops_status.decision.decide`` with real ``WatchRequest`` objects
  (from ``parse_watch_request``) and real ``StatusRead``/``ReadFailure`` observations;
- the comparison pollers are small re-implementations of azure-core's ARM poller
  (fixed 30 s, Retry-After used in place of the interval, as ``_extract_delay`` does), a
  fixed 10 s poller, and the .NET SDK's sequential delays (1, 1, 1, 2, 4, 8, 16, 32 s,
  then 32 s; Retry-After first). All of them wait Retry-After after a 429 and read again.

ARM is modelled as a token bucket per subscription (250 reads, refilled 25/s): an empty
bucket answers 429 with Retry-After; every answer carries
``x-ms-ratelimit-remaining-subscription-reads``. Time is virtual: an event queue (heapq)
of next-read times, no tick loop, no sleeping. Same seed, same figures.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import heapq
import json
import math
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from ops_status.clock import format_time
from ops_status.decision import Finish, decide
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.policy import PollPolicy
from ops_status.request import WatchRequest, parse_watch_request

ARM_ENDPOINT = "https://management.azure.com"
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

# -- the workload ---------------------------------------------------------------------

MIN_DURATION = 20.0
MAX_DURATION = 7200.0
START_SPREAD = 3600.0  # spread workload: operations start uniformly over the first hour
SUBSCRIPTIONS = 100  # spread workload: operations spread uniformly over this many
SUBMIT_DELAY = (1.0, 5.0)  # the pipeline drops the watch 1-5 s after ARM accepted the write
RETRY_AFTER_SHARE = 0.30  # operations whose provider sends Retry-After while running
RETRY_AFTER_VALUES = (10.0, 15.0)
FAILURE_SHARE = 0.10  # operations that end Failed part-way
FAILURE_POINT = (0.1, 1.0)  # ... after this fraction of their planned duration
PROGRESS_SHARE = 0.50  # operations reporting percentComplete
PROGRESS_RATE = (0.9, 1.1)  # progress is linear in time at this rate (+/-10 %) ...
PROGRESS_NOISE = 2.0  # ... +/- this many points on every read, rounded to an integer
STALL_SHARE = 0.30  # of the reporting operations: progress stalls ...
STALL_AT = (90, 99)  # ... at this many percent until the end

# Fleet: ARM's write bucket (200, refilled 10/s per subscription) paces how fast a rollout
# can start operations, so 2,000 starts take about three minutes.
FLEET_WRITE_BURST = 200
FLEET_WRITE_RATE = 10.0

# -- ARM ------------------------------------------------------------------------------

BUCKET_SIZE = 250.0
BUCKET_REFILL = 25.0  # reads per second
THROTTLE_RETRY_AFTER = 5.0  # Retry-After on a 429 (an assumption: ARM names "a few seconds")


@dataclass(frozen=True)
class Operation:
    index: int
    subscription: str
    start: float
    """When ARM accepted the operation (its startTime)."""
    submit: float
    """When the watch was submitted: the first read happens then."""
    end: float
    """When ARM's status turns terminal."""
    failed: bool
    retry_after: float | None
    progress_rate: float | None
    """None: the provider reports no percentComplete."""
    stall_at: int | None

    @property
    def duration(self) -> float:
        return self.end - self.start


def make_workload(count: int, seed: int, *, fleet: bool = False) -> list[Operation]:
    """``count`` operations. Spread: start uniformly over the first hour on
    ``SUBSCRIPTIONS`` subscriptions. Fleet: one subscription, starts paced by ARM's write
    bucket (a rollout starting everything as fast as ARM lets it)."""
    rng = random.Random(seed * 1_000_003 + (1 if fleet else 0))
    subscriptions = [
        str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(SUBSCRIPTIONS)
    ]
    operations = []
    for index in range(count):
        if fleet:
            subscription = subscriptions[0]
            start = max(0.0, (index - FLEET_WRITE_BURST) / FLEET_WRITE_RATE) + rng.random()
        else:
            subscription = rng.choice(subscriptions)
            start = rng.uniform(0.0, START_SPREAD)
        planned = math.exp(rng.uniform(math.log(MIN_DURATION), math.log(MAX_DURATION)))
        failed = rng.random() < FAILURE_SHARE
        duration = max(MIN_DURATION, planned * rng.uniform(*FAILURE_POINT)) if failed else planned
        retry_after = rng.choice(RETRY_AFTER_VALUES) if rng.random() < RETRY_AFTER_SHARE else None
        reports = rng.random() < PROGRESS_SHARE
        rate = rng.uniform(*PROGRESS_RATE) if reports else None
        stall = rng.randint(*STALL_AT) if reports and rng.random() < STALL_SHARE else None
        operations.append(
            Operation(
                index=index,
                subscription=subscription,
                start=start,
                submit=start + rng.uniform(*SUBMIT_DELAY),
                end=start + duration,
                failed=failed,
                retry_after=retry_after,
                progress_rate=rate,
                stall_at=stall,
            )
        )
        # Progress is planned against the *planned* duration: a failure cuts it short.
        if rate is not None:
            operations[-1] = replace(operations[-1], progress_rate=rate * duration / planned)
    return operations


@dataclass
class Answer:
    """One HTTP answer, as the observation classifier would see it."""

    throttled: bool
    status: str = "Running"
    percent: float | None = None
    retry_after: float | None = None
    remaining: int = 0


class Arm:
    """Token buckets per subscription, and the operations' statuses over time."""

    def __init__(self, operations: Sequence[Operation], seed: int) -> None:
        self._tokens: dict[str, float] = {}
        self._refilled_at: dict[str, float] = {}
        self._noise = [random.Random(seed * 7_919 + op.index) for op in operations]

    def read(self, op: Operation, now: float) -> Answer:
        sub = op.subscription
        tokens = self._tokens.get(sub, BUCKET_SIZE)
        tokens = min(BUCKET_SIZE, tokens + (now - self._refilled_at.get(sub, now)) * BUCKET_REFILL)
        self._refilled_at[sub] = now
        if tokens < 1.0:
            self._tokens[sub] = tokens
            return Answer(throttled=True, retry_after=THROTTLE_RETRY_AFTER, remaining=0)
        tokens -= 1.0
        self._tokens[sub] = tokens
        remaining = int(tokens)
        if now >= op.end:
            return Answer(
                throttled=False,
                status="Failed" if op.failed else "Succeeded",
                percent=None if op.progress_rate is None else (None if op.failed else 100.0),
                remaining=remaining,
            )
        percent = None
        if op.progress_rate is not None:
            true = 100.0 * (now - op.start) / op.duration * op.progress_rate
            noisy = true + self._noise[op.index].uniform(-PROGRESS_NOISE, PROGRESS_NOISE)
            cap = 99 if op.stall_at is None else op.stall_at
            percent = float(min(cap, max(0, round(noisy))))
        return Answer(
            throttled=False, percent=percent, retry_after=op.retry_after, remaining=remaining
        )


# -- pollers --------------------------------------------------------------------------


class Poller:
    """Given an answer, seconds until the next read, or None when the watch is over."""

    name = "poller"

    def start(self, op: Operation) -> None:
        """Called once per operation before the first read."""

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        raise NotImplementedError


class Ours(Poller):
    """The real decision code: parse_watch_request, StatusRead/ReadFailure, decide."""

    def __init__(self, policy: PollPolicy, name: str = "ours") -> None:
        self.policy = policy
        self.name = name
        self._requests: dict[int, WatchRequest] = {}
        self._start_times: dict[int, str] = {}
        self.outcomes: dict[int, str] = {}

    def start(self, op: Operation) -> None:
        body = {
            "subscriptionId": op.subscription,
            "location": "West Europe",
            "operationId": f"{uuid.UUID(int=op.index)}*{op.index:08X}",
            "correlationId": f"bench-{op.index}",
            "timeout": 6 * 3600,
        }
        self._start_times[op.index] = format_time(EPOCH + timedelta(seconds=op.start))
        self._requests[op.index] = parse_watch_request(
            json.dumps(body), arm_endpoint=ARM_ENDPOINT, policy=self.policy
        )

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        moment = EPOCH + timedelta(seconds=now)
        observation: StatusRead | ReadFailure
        if answer.throttled:
            observation = ReadFailure(
                ReadFailureKind.THROTTLED,
                "HTTP 429 TooManyRequests",
                429,
                {"code": "TooManyRequests", "message": "throttled"},
                retry_after=answer.retry_after,
                remaining_reads=answer.remaining,
            )
        else:
            observation = StatusRead(
                status=answer.status,
                percent_complete=answer.percent,
                start_time=self._start_times[op.index],
                retry_after=answer.retry_after,
                remaining_reads=answer.remaining,
            )
        action = decide(self._requests[op.index], observation, moment, self.policy)
        if isinstance(action, Finish):
            self.outcomes[op.index] = action.outcome.status.value
            del self._requests[op.index]
            return None
        self._requests[op.index] = action.next_request
        return action.delay


class Fixed(Poller):
    """azure-core's ARM poller (and ``az ... wait``) at 30 s, or any fixed interval:
    the Retry-After of an answer replaces the interval (azure-core ``_extract_delay``)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.name = f"fixed {interval:g} s"

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if not answer.throttled and answer.status != "Running":
            return None
        return answer.retry_after if answer.retry_after else self.interval


class DotNet(Poller):
    """Azure.Core's SequentialDelayStrategy behind its Retry-After strategy."""

    name = ".NET sequential"
    DELAYS = (1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

    def __init__(self) -> None:
        self._polls: dict[int, int] = {}

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if not answer.throttled and answer.status != "Running":
            return None
        if answer.retry_after:
            return answer.retry_after
        n = self._polls.get(op.index, 0)
        self._polls[op.index] = n + 1
        return self.DELAYS[min(n, len(self.DELAYS) - 1)]


class FairShare(Poller):
    """A reference no real poller can be: it knows how many watches are in flight on the
    subscription and spaces every one of them so that all together read at ``share`` of
    ARM's refill rate (never faster than ours' regular schedule). It shows what the read
    budget allows; it is not a policy to compare against on equal terms."""

    name = "(fleet-aware reference)"

    def __init__(self, policy: PollPolicy, share: float = 0.9) -> None:
        self.policy = policy
        self.share = share
        self._submits: list[float] = []
        self._finished = 0

    def start(self, op: Operation) -> None:
        bisect.insort(self._submits, op.submit)

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if not answer.throttled and answer.status != "Running":
            self._finished += 1
            return None
        inflight = bisect.bisect_right(self._submits, now) - self._finished
        p = self.policy
        regular = max(p.min_delay, min(p.max_delay, p.growth * (now - op.submit)))
        return max(regular, inflight / (self.share * BUCKET_REFILL), answer.retry_after or 0.0)


# -- simulation -----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    reads: list[int]
    throttled: list[int]
    lag: list[float]
    """Seconds from the operation's real end to the read that saw it."""
    relative_lag: list[float]
    """``lag`` over the operation's duration (start to real end)."""
    sends_retry_after: list[bool]
    detected: int
    gave_up: int
    """Operations that met 10+ consecutive 429s (azure-core's retry policy would raise)."""
    outcomes_ok: bool
    """For ours: every watch finished with the operation's own terminal status."""

    @property
    def operations(self) -> int:
        return len(self.reads)

    def row(self) -> dict[str, float]:
        total_reads = sum(self.reads)
        total_429 = sum(self.throttled)
        without_ra = [
            r for r, ra in zip(self.relative_lag, self.sends_retry_after, strict=True) if not ra
        ]
        return {
            "reads_mean": total_reads / len(self.reads),
            "reads_p95": percentile(self.reads, 95),
            "lag_p50": percentile(self.lag, 50),
            "lag_p95": percentile(self.lag, 95),
            "lag_max": max(self.lag),
            "rel_p50": percentile(self.relative_lag, 50),
            "rel_p95": percentile(self.relative_lag, 95),
            "rel_p95_no_ra": percentile(without_ra, 95) if without_ra else 0.0,
            "throttled": float(total_429),
            "throttled_pct": 100.0 * total_429 / total_reads if total_reads else 0.0,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def simulate(operations: Sequence[Operation], poller: Poller, seed: int) -> Result:
    """Run every operation's watch to its end; one event per read, in time order."""
    arm = Arm(operations, seed)
    count = len(operations)
    reads = [0] * count
    throttled = [0] * count
    streak = [0] * count
    gave_up: set[int] = set()
    detected_at: list[float | None] = [None] * count
    queue: list[tuple[float, int]] = []
    for op in operations:
        poller.start(op)
        queue.append((op.submit, op.index))
    heapq.heapify(queue)
    while queue:
        now, index = heapq.heappop(queue)
        op = operations[index]
        answer = arm.read(op, now)
        reads[index] += 1
        if answer.throttled:
            throttled[index] += 1
            streak[index] += 1
            if streak[index] >= 10:
                gave_up.add(index)
        else:
            streak[index] = 0
        delay = poller.next_delay(op, answer, now)
        if delay is None:
            detected_at[index] = now
        else:
            heapq.heappush(queue, (now + delay, index))
    lag = []
    relative = []
    for op, seen in zip(operations, detected_at, strict=True):
        if seen is None or seen < op.end:
            raise AssertionError(f"{poller.name}: operation {op.index} not detected ({seen})")
        lag.append(seen - op.end)
        relative.append((seen - op.end) / op.duration)
    outcomes_ok = True
    if isinstance(poller, Ours):
        expected = {op.index: "Failed" if op.failed else "Succeeded" for op in operations}
        outcomes_ok = poller.outcomes == expected
    return Result(
        name=poller.name,
        reads=reads,
        throttled=throttled,
        lag=lag,
        relative_lag=relative,
        sends_retry_after=[op.retry_after is not None for op in operations],
        detected=sum(1 for seen in detected_at if seen is not None),
        gave_up=len(gave_up),
        outcomes_ok=outcomes_ok,
    )


# -- runs -----------------------------------------------------------------------------

POLLERS = ("ours", "ours-no-progress", "fixed-30", "fixed-10", "dotnet")


def build_poller(key: str, policy: PollPolicy) -> Poller:
    if key == "ours":
        return Ours(policy)
    if key == "ours-no-progress":
        return Ours(replace(policy, progress_projection=False), "ours, percentComplete off")
    if key == "fixed-30":
        return Fixed(30.0)
    if key == "fixed-10":
        return Fixed(10.0)
    if key == "dotnet":
        return DotNet()
    if key == "fair-share":
        return FairShare(policy)
    raise ValueError(key)


@dataclass(frozen=True)
class Job:
    count: int
    seed: int
    fleet: bool
    poller: str
    policy: PollPolicy


@functools.lru_cache(maxsize=4)
def _workload(count: int, seed: int, fleet: bool) -> tuple[Operation, ...]:
    return tuple(make_workload(count, seed, fleet=fleet))


def run_job(job: Job) -> Result:
    operations = _workload(job.count, job.seed, job.fleet)
    return simulate(operations, build_poller(job.poller, job.policy), job.seed)


def run_jobs(jobs: Sequence[Job], processes: int) -> list[Result]:
    """Each job is an independent simulation: results do not depend on ``processes``."""
    if processes <= 1:
        return [run_job(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(run_job, jobs, chunksize=1)


# -- reporting ------------------------------------------------------------------------

HEADER = (
    f"{'policy':<26} {'reads/op':>8} {'p95':>4} {'lag p50':>7} {'p95':>6} {'max':>5}"
    f" {'rel p50':>7} {'p95':>6} {'p95 noRA':>8} {'429s':>7} {'%reads':>7}"
)


def format_row(result: Result) -> str:
    r = result.row()
    return (
        f"{result.name:<26} {r['reads_mean']:>8.1f} {r['reads_p95']:>4.0f}"
        f" {r['lag_p50']:>6.1f}s {r['lag_p95']:>5.1f}s {r['lag_max']:>4.0f}s"
        f" {100 * r['rel_p50']:>6.1f}% {100 * r['rel_p95']:>5.1f}%"
        f" {100 * r['rel_p95_no_ra']:>7.1f}% {r['throttled']:>7.0f} {r['throttled_pct']:>6.2f}%"
    )


def print_table(title: str, results: Sequence[Result]) -> None:
    print(f"\n{title}")
    print(HEADER)
    print("-" * len(HEADER))
    for result in results:
        print(format_row(result))
    gave_up = [f"{r.name}: {r.gave_up}" for r in results if r.gave_up]
    if gave_up:
        print(
            "operations that met 10+ consecutive 429s (azure-core would raise): "
            + ", ".join(gave_up)
        )


def targets(ours: Result, fixed30: Result) -> list[tuple[str, bool, str]]:
    o, f = ours.row(), fixed30.row()
    return [
        ("p95 lag / duration <= 10 %", o["rel_p95"] <= 0.10, f"{100 * o['rel_p95']:.1f} %"),
        ("p95 lag <= 30 s", o["lag_p95"] <= 30.0, f"{o['lag_p95']:.1f} s"),
        (
            "mean reads <= 1.5 x fixed 30 s",
            o["reads_mean"] <= 1.5 * f["reads_mean"],
            f"{o['reads_mean'] / f['reads_mean']:.2f} x",
        ),
        ("429s < 1 % of reads", o["throttled_pct"] < 1.0, f"{o['throttled_pct']:.2f} %"),
    ]


def print_targets(ours: Result, fixed30: Result) -> None:
    for name, met, value in targets(ours, fixed30):
        print(f"  target {name:<32} {'met' if met else 'NOT met':<8} ({value})")


SWEEP_MIN_DELAY = (2.5, 3.0, 5.0)
SWEEP_GROWTH = (0.06, 0.08, 0.1)
SWEEP_MAX_DELAY = (25.0, 30.0)


def sweep(count: int, seed: int, base: PollPolicy, processes: int) -> None:
    """Ours over a grid of min_delay x growth x max_delay on the spread workload."""
    grid = [
        replace(base, min_delay=m, growth=g, max_delay=x)
        for m in SWEEP_MIN_DELAY
        for g in SWEEP_GROWTH
        for x in SWEEP_MAX_DELAY
    ]
    jobs = [Job(count, seed, False, "fixed-30", base)]
    jobs += [Job(count, seed, False, "ours", policy) for policy in grid]
    results = run_jobs(jobs, processes)
    fixed = results[0].row()["reads_mean"]
    print(
        f"\nSweep of ours' defaults on the spread workload ({count} operations, seed {seed},"
        f" jitter {base.jitter:g}, other knobs at their defaults)"
    )
    print(
        f"{'min':>4} {'max':>4} {'growth':>6} {'reads/op':>8} {'x 30s':>6} {'lag p95':>8}"
        f" {'rel p95':>8} {'p95 noRA':>8}"
    )
    for policy, result in zip(grid, results[1:], strict=True):
        r = result.row()
        print(
            f"{policy.min_delay:>4g} {policy.max_delay:>4g} {policy.growth:>6g}"
            f" {r['reads_mean']:>8.1f} {r['reads_mean'] / fixed:>6.2f} {r['lag_p95']:>7.1f}s"
            f" {100 * r['rel_p95']:>7.1f}% {100 * r['rel_p95_no_ra']:>7.1f}%"
        )


def describe(policy: PollPolicy) -> str:
    return (
        f"PollPolicy(min_delay={policy.min_delay:g}, max_delay={policy.max_delay:g},"
        f" growth={policy.growth:g}, jitter={policy.jitter:g},"
        f" low_read_budget={policy.low_read_budget},"
        f" read_budget_stretch_max={policy.read_budget_stretch_max:g},"
        f" read_budget_max_delay={policy.read_budget_max_delay:g},"
        f" progress_margin={policy.progress_margin:g},"
        f" progress_lengthen_max={policy.progress_lengthen_max:g})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.poll_policy",
        description="Simulate ARM polling policies on a virtual clock (see docs/performance.md).",
    )
    parser.add_argument("--operations", type=int, default=10_000, help="spread workload size")
    parser.add_argument("--fleet", type=int, default=2_000, help="fleet workload size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--sweep", action="store_true", help="also sweep ours' defaults")
    args = parser.parse_args(argv)
    policy = PollPolicy()
    began = time.perf_counter()
    print(f"ours = {describe(policy)}")
    print(
        f"workload: durations log-uniform {MIN_DURATION:g} s-{MAX_DURATION / 3600:g} h;"
        f" {RETRY_AFTER_SHARE:.0%} send Retry-After {RETRY_AFTER_VALUES[0]:g}"
        f" or {RETRY_AFTER_VALUES[1]:g} s"
        f" while running; {FAILURE_SHARE:.0%} fail part-way; {PROGRESS_SHARE:.0%} report"
        f" percentComplete (rate x{PROGRESS_RATE[0]:g}-{PROGRESS_RATE[1]:g}, +/-{PROGRESS_NOISE:g}"
        f" points, {STALL_SHARE:.0%} of them stall at {STALL_AT[0]}-{STALL_AT[1]} %)."
        f" ARM: {BUCKET_SIZE:g} reads per subscription, +{BUCKET_REFILL:g}/s, 429 Retry-After"
        f" {THROTTLE_RETRY_AFTER:g} s."
    )
    spread = [Job(args.operations, args.seed, False, key, policy) for key in POLLERS]
    fleet = [Job(args.fleet, args.seed, True, key, policy) for key in (*POLLERS, "fair-share")]
    results = run_jobs([*spread, *fleet], args.jobs)
    spread_results, fleet_results = results[: len(spread)], results[len(spread) :]
    for results_of in (spread_results, fleet_results):
        if not all(r.detected == r.operations and r.outcomes_ok for r in results_of):
            raise AssertionError("an operation was missed or misreported")
    print_table(
        f"Spread: {args.operations} operations starting uniformly over 1 h on {SUBSCRIPTIONS}"
        f" subscriptions (seed {args.seed})",
        spread_results,
    )
    print_targets(spread_results[0], spread_results[2])
    print_table(
        f"Fleet: {args.fleet} operations on ONE subscription, started as fast as ARM's write"
        f" bucket allows ({FLEET_WRITE_BURST} at once, then {FLEET_WRITE_RATE:g}/s;"
        f" seed {args.seed})",
        fleet_results,
    )
    print_targets(fleet_results[0], fleet_results[2])
    print(
        "  (fleet-aware reference: knows the number of watches in flight and spaces them at"
        " 90 % of the refill rate; no real poller has that knowledge)"
    )
    if args.sweep:
        sweep(args.operations, args.seed, policy, args.jobs)
    print(f"\nwall time {time.perf_counter() - began:.1f} s with {args.jobs} process(es)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
