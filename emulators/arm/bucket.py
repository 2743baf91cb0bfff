"""ARM's read throttle: a token bucket per subscription.

This module owns ``TokenBucket`` (``capacity`` reads, refilled continuously) and
``ReadMeter``, which keeps one bucket per subscription when the simulator has a read
budget and, without one, only counts the remaining-reads header down.
"""

from __future__ import annotations

import math

__all__ = ["ReadMeter", "TokenBucket"]

#: Without a token bucket the remaining-reads header counts down from here; 11999 is the
#: value ARM historically reported for its hourly read quota, so clients that log it see
#: something familiar and tests can still see it decrease.
_UNMETERED_READS = 11999


class TokenBucket:
    """ARM's read throttle: ``capacity`` reads, refilled continuously at ``rate`` per second."""

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> tuple[bool, int, int]:
        """(allowed, remaining after this read, seconds until a read would be allowed)."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 0
        wait = math.ceil((1 - self.tokens) / self.rate) if self.rate > 0 else 3600
        return False, 0, max(1, wait)

    def remaining(self, now: float) -> int:
        self._refill(now)
        return int(self.tokens)


class ReadMeter:
    """Reads left per subscription. ``budget`` None means unmetered: never throttled.

    Budget and refill rate are passed on every call, so a change to the simulator's
    settings applies to subscriptions first read after it (a bucket keeps the settings it
    was created with).
    """

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._unmetered: dict[str, int] = {}

    def take(
        self, subscription_id: str, now: float, budget: int | None, rate: float
    ) -> tuple[bool, int, int]:
        """(allowed, remaining after this read, seconds until a read would be allowed)."""
        if budget is None:
            remaining = max(0, self._unmetered.get(subscription_id, _UNMETERED_READS + 1) - 1)
            self._unmetered[subscription_id] = remaining
            return True, remaining, 0
        return self._bucket(subscription_id, now, budget, rate).take(now)

    def remaining(self, subscription_id: str, now: float, budget: int | None, rate: float) -> int:
        if budget is None:
            return self._unmetered.get(subscription_id, _UNMETERED_READS)
        return self._bucket(subscription_id, now, budget, rate).remaining(now)

    def _bucket(self, subscription_id: str, now: float, budget: int, rate: float) -> TokenBucket:
        bucket = self._buckets.get(subscription_id)
        if bucket is None:
            bucket = TokenBucket(budget, rate, now)
            self._buckets[subscription_id] = bucket
        return bucket
