"""The simulated operations, and the latency of every hop of a poll cycle.

Everything here is drawn from seeded ``random.Random`` streams: same seed, same
operations, same hop latencies, whichever poller reads them (so pollers are compared on
common random numbers).
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, replace

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

# Fleet: ARM's write bucket (200, refilled 10/s per subscription and principal) paces how
# fast one rollout can start operations: 2,000 starts take about three minutes, 10,000
# about 17 minutes.
FLEET_WRITE_BURST = 200
FLEET_WRITE_RATE = 10.0


@dataclass(frozen=True)
class Operation:
    index: int
    subscription: str
    start: float
    """When ARM accepted the operation (its startTime)."""
    submit: float
    """When the watch was submitted: the first read is requested then."""
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


def make_workload(
    count: int, seed: int, *, fleet: bool = False, subscriptions: int = 1
) -> list[Operation]:
    """``count`` operations. Spread: start uniformly over the first hour on
    ``SUBSCRIPTIONS`` subscriptions. Fleet: ``subscriptions`` subscriptions (operation i on
    subscription i mod n), starts paced on each by ARM's write bucket (a rollout starting
    everything as fast as ARM lets it)."""
    rng = random.Random(seed * 1_000_003 + (1 if fleet else 0))
    names = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(SUBSCRIPTIONS)]
    if fleet and subscriptions > len(names):
        raise ValueError(f"at most {len(names)} fleet subscriptions")
    operations = []
    for index in range(count):
        if fleet:
            subscription = names[index % subscriptions]
            nth = index // subscriptions  # the nth write on its subscription
            start = max(0.0, (nth - FLEET_WRITE_BURST) / FLEET_WRITE_RATE) + rng.random()
        else:
            subscription = rng.choice(names)
            start = rng.uniform(0.0, START_SPREAD)
        planned = math.exp(rng.uniform(math.log(MIN_DURATION), math.log(MAX_DURATION)))
        failed = rng.random() < FAILURE_SHARE
        duration = max(MIN_DURATION, planned * rng.uniform(*FAILURE_POINT)) if failed else planned
        retry_after = rng.choice(RETRY_AFTER_VALUES) if rng.random() < RETRY_AFTER_SHARE else None
        reports = rng.random() < PROGRESS_SHARE
        rate = rng.uniform(*PROGRESS_RATE) if reports else None
        stall = rng.randint(*STALL_AT) if reports and rng.random() < STALL_SHARE else None
        operation = Operation(
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
        # Progress is planned against the *planned* duration: a failure cuts it short.
        if rate is not None:
            operation = replace(operation, progress_rate=rate * duration / planned)
        operations.append(operation)
    return operations


# -- hop latency ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hops:
    """Latency of one poll cycle, each hop drawn uniformly from its range, per cycle.

    A follow-up scheduled for time T is delivered by Service Bus at T + ``delivery``, the
    Functions host hands it to the handler after ``dispatch`` more (the request to ARM
    leaves then), and ARM answers ``arm`` later, with the status as of its answer. Pollers
    that sleep in-process (azure-core, ``az ... wait``) pay only the ``arm`` hop.
    """

    delivery: tuple[float, float] = (0.1, 1.0)
    dispatch: tuple[float, float] = (0.05, 0.5)
    arm: tuple[float, float] = (0.15, 0.5)

    @property
    def cycle(self) -> tuple[float, float]:
        """Shortest and longest whole cycle."""
        lows, highs = zip(self.delivery, self.dispatch, self.arm, strict=True)
        return sum(lows), sum(highs)

    @property
    def typical(self) -> float:
        """Mean whole cycle."""
        low, high = self.cycle
        return (low + high) / 2

    @property
    def before_request(self) -> float:
        """Shortest time from a scheduled enqueue time to the request leaving."""
        return self.delivery[0] + self.dispatch[0]

    def describe(self) -> str:
        if self == NO_HOPS:
            return "no hop latency"
        low, high = self.cycle
        return (
            f"hop latency per cycle {low:g}-{high:g} s (Service Bus delivery"
            f" {self.delivery[0]:g}-{self.delivery[1]:g} s, dispatch"
            f" {self.dispatch[0]:g}-{self.dispatch[1]:g} s, ARM round trip"
            f" {self.arm[0]:g}-{self.arm[1]:g} s)"
        )


HOPS = Hops()
NO_HOPS = Hops((0.0, 0.0), (0.0, 0.0), (0.0, 0.0))


class HopStream:
    """Per operation, the hop latencies of its 1st, 2nd, ... cycle (one seeded stream per
    operation, so every poller meets the same latencies on its nth read)."""

    def __init__(self, hops: Hops, seed: int, count: int) -> None:
        self._hops = hops
        self._rngs = [random.Random(seed * 104_729 + index) for index in range(count)]

    def next(self, index: int) -> tuple[float, float]:
        """(Service Bus delivery + dispatch, ARM round trip) of the operation's next cycle."""
        h, rng = self._hops, self._rngs[index]
        before = rng.uniform(*h.delivery) + rng.uniform(*h.dispatch)
        return before, rng.uniform(*h.arm)
