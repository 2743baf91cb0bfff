"""The simulated ARM: a read bucket per subscription, and every operation's status.

ARM throttles per subscription, per principal and per operation type (Request limits and
throttling, learn.microsoft.com): every watcher here is one principal, so each
subscription is one bucket of ``BUCKET_SIZE`` reads refilled ``BUCKET_REFILL`` per second.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.poll_policy.workload import PROGRESS_NOISE, Operation

BUCKET_SIZE = 250.0
BUCKET_REFILL = 25.0  # reads per second
THROTTLE_RETRY_AFTER = 5.0  # Retry-After on a 429 (an assumption: ARM names "a few seconds")


@dataclass
class Answer:
    """One HTTP answer, as the observation classifier would see it."""

    throttled: bool
    status: str = "Running"
    percent: float | None = None
    retry_after: float | None = None
    remaining: int = 0


class Arm:
    """Token buckets per subscription, and the operations' statuses over time. ``read``
    must be called in time order."""

    def __init__(
        self,
        operations: Sequence[Operation],
        seed: int,
        *,
        bucket_size: float = BUCKET_SIZE,
        refill: float = BUCKET_REFILL,
    ) -> None:
        self._size = bucket_size
        self._refill = refill
        self._tokens: dict[str, float] = {}
        self._refilled_at: dict[str, float] = {}
        self._noise = [random.Random(seed * 7_919 + op.index) for op in operations]

    def read(self, op: Operation, now: float) -> Answer:
        sub = op.subscription
        tokens = self._tokens.get(sub, self._size)
        tokens = min(self._size, tokens + (now - self._refilled_at.get(sub, now)) * self._refill)
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
