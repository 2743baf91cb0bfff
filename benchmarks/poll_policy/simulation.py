"""One virtual-clock run of a poller over a workload, and the oracle it is measured against.

Time is virtual: an event queue (heapq) of ARM answer times, no tick loop, no sleeping.
A cycle: the poller answers a read with a delay d; the next request leaves d later plus,
for pollers that reschedule through Service Bus, the delivery and dispatch hops; ARM
answers one round trip after that, with the status and the bucket as of its answer.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.poll_policy.arm import Answer, Arm
from benchmarks.poll_policy.pollers import GaveUp, Ours, OursFast, Poller
from benchmarks.poll_policy.workload import HOPS, Hops, HopStream, Operation

# A request this much before Retry-After permits counts as early (float noise aside).
_EARLY_TOLERANCE = 1e-6


@dataclass
class Result:
    name: str
    reads: list[int]
    throttled: list[int]
    lag: list[float]
    """Seconds from the operation's real end to the answer that reported it (inf: missed)."""
    durations: list[float]
    """Each operation's duration (start to real end)."""
    sends_retry_after: list[bool]
    early: int
    """Requests sent before the previous answer's Retry-After permitted (must be 0)."""
    outcomes_ok: bool
    """For ours: every watch finished with the operation's own terminal status."""
    stopped: list[float]
    """When each watch stopped: the answer that reported the end, or the last one before
    the poller gave up (for ``az ... wait``: how long the pipeline agent was held)."""
    calls: list[tuple[float, float]] | None = None
    """With ``record_calls``: each read's request and answer times, in answer order."""

    @property
    def operations(self) -> int:
        return len(self.reads)

    @property
    def missed(self) -> int:
        return sum(1 for lag in self.lag if math.isinf(lag))

    @property
    def detected(self) -> int:
        return self.operations - self.missed

    @property
    def relative_lag(self) -> list[float]:
        return [lag / d for lag, d in zip(self.lag, self.durations, strict=True)]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (inf values sort last)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def peak_concurrency(intervals: Sequence[tuple[float, float]]) -> int:
    """Most intervals open at once (an end at the instant of a start closes first)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def oracle_lags(operations: Sequence[Operation]) -> list[float]:
    """The lag of the poller no compliant poller can beat: it reads at the watch's
    submission, then again at the earliest instant each answer's Retry-After permits, and
    continuously when there is none; it pays no hop latency and is never throttled. Its lag
    is the time from the end to the first permitted read at or after it: 0 without
    Retry-After, (submit + k R) - end with."""
    lags = []
    for op in operations:
        if op.retry_after is None:
            lags.append(0.0)
            continue
        cycles = math.ceil((op.end - op.submit) / op.retry_after)
        lags.append(op.submit + cycles * op.retry_after - op.end)
    return lags


def hop_floor_lags(operations: Sequence[Operation], seed: int, hops: Hops = HOPS) -> list[float]:
    """The oracle with the hops of a Service Bus poll cycle: on an operation that sends
    Retry-After, the next read is scheduled for the instant Retry-After permits and then
    pays delivery, dispatch and the ARM round trip (``seed``'s hop streams, as every poller
    meets them); without Retry-After its lag is 0, as the oracle's. No poller that
    reschedules through Service Bus and honours Retry-After does better in distribution:
    the excess of this over the oracle is the hops', not the schedule's."""
    senders = [op for op in operations if op.retry_after is not None]
    # The operations keep their own hop streams (indexed by op.index) but get a private
    # ARM that never throttles: this reference reads nothing from the shared bucket.
    arm = Arm(operations, seed, bucket_size=1e12, refill=1e12)
    result = _run(operations, senders, _HopFloor(), seed, hops, arm)
    lags = [0.0] * len(operations)
    for op in senders:
        lags[op.index] = result[op.index] - op.end
    return lags


class _HopFloor(Poller):
    name = "oracle + Service Bus hops"

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if not answer.throttled and answer.status != "Running":
            return None
        return answer.retry_after


def _run(
    operations: Sequence[Operation],
    chosen: Sequence[Operation],
    poller: Poller,
    seed: int,
    hops: Hops,
    arm: Arm,
) -> list[float]:
    """Detection times of ``chosen`` (a subset of ``operations``, which sizes the streams),
    read by a poller that never gives up and never meets a 429."""
    stream = HopStream(hops, seed, len(operations))
    detected_at = [math.inf] * len(operations)
    queue = []
    for op in chosen:
        _, rtt = stream.next(op.index)
        queue.append((op.submit + rtt, op.index))
    heapq.heapify(queue)
    while queue:
        now, index = heapq.heappop(queue)
        op = operations[index]
        answer = arm.read(op, now)
        delay = poller.next_delay(op, answer, now)
        if delay is None:
            detected_at[index] = now
            continue
        before, rtt = stream.next(index)
        heapq.heappush(queue, (now + delay + before + rtt, index))
    return detected_at


def simulate(
    operations: Sequence[Operation],
    poller: Poller,
    seed: int,
    *,
    hops: Hops = HOPS,
    arm: Arm | None = None,
    record_calls: bool = False,
) -> Result:
    """Run every operation's watch to its end (or until the poller gives up), one event
    per ARM answer, in time order. ``record_calls`` keeps every read's (request, answer)
    times, for the cost of the executions that make them (``commands/cost.py``)."""
    arm = arm if arm is not None else Arm(operations, seed)
    stream = HopStream(hops, seed, len(operations))
    count = len(operations)
    reads = [0] * count
    throttled = [0] * count
    streak = [0] * count
    detected_at = [math.inf] * count
    stopped = [op.submit for op in operations]
    calls: list[tuple[float, float]] | None = [] if record_calls else None
    early = 0
    limit = poller.max_429_retries
    # (answer time, operation, request time)
    queue: list[tuple[float, int, float]] = []
    for op in operations:
        poller.start(op)
        _, rtt = stream.next(op.index)
        queue.append((op.submit + rtt, op.index, op.submit))
    heapq.heapify(queue)
    while queue:
        now, index, requested = heapq.heappop(queue)
        op = operations[index]
        answer = arm.read(op, now)
        reads[index] += 1
        stopped[index] = now
        if calls is not None:
            calls.append((requested, now))
        if answer.throttled:
            throttled[index] += 1
            streak[index] += 1
            if limit is not None and streak[index] > limit:
                continue  # the SDK's retry policy raised: the watch is lost
        else:
            streak[index] = 0
        try:
            delay = poller.next_delay(op, answer, now)
        except GaveUp:
            continue
        if delay is None:
            detected_at[index] = now
            continue
        before, rtt = stream.next(index)
        request = now + delay + (0.0 if poller.in_process else before)
        promised = answer.retry_after if answer.throttled or poller.reads_operation_status else None
        if promised and request < now + promised - _EARLY_TOLERANCE:
            early += 1
        heapq.heappush(queue, (request + rtt, index, request))
    outcomes_ok = True
    if isinstance(poller, Ours | OursFast):
        expected = {
            op.index: "Failed" if op.failed else "Succeeded"
            for op, seen in zip(operations, detected_at, strict=True)
            if not math.isinf(seen)
        }
        outcomes_ok = poller.outcomes == expected and len(expected) == count
    lag = []
    for op, seen in zip(operations, detected_at, strict=True):
        if seen < op.end:
            raise AssertionError(f"{poller.name}: operation {op.index} seen ended early")
        lag.append(seen - op.end)
    return Result(
        name=poller.name,
        reads=reads,
        throttled=throttled,
        lag=lag,
        durations=[op.duration for op in operations],
        sends_retry_after=[op.retry_after is not None for op in operations],
        early=early,
        outcomes_ok=outcomes_ok,
        stopped=stopped,
        calls=calls,
    )
