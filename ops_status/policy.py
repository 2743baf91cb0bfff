"""PollPolicy: when to look again. Pure arithmetic, no clock, no randomness of its own.

The delay before the next status read grows with the time the watch has already spent
(an operation that has run for 10 minutes is unlikely to end in the next 5 seconds),
bounded by ``min_delay`` and ``max_delay``, spread by a deterministic jitter so that a
fleet of watches started together does not read ARM in lock-step. ARM's ``Retry-After``
is always honoured as a lower bound (clamped to ``retry_after_max``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["PollPolicy", "jitter_fraction", "poll_delay"]


@dataclass(frozen=True)
class PollPolicy:
    """Every knob of the polling behaviour. Each one is an app setting (see settings.py)."""

    min_delay: float = 5.0
    """Shortest wait between two reads of one operation, in seconds."""
    max_delay: float = 30.0
    """Longest wait between two reads, unless ARM's Retry-After asks for more."""
    growth: float = 0.1
    """Delay as a fraction of the time already spent watching (0.1: 10 % of the elapsed time)."""
    jitter: float = 0.1
    """Spread applied to every computed delay, as a fraction (0.1: +/-10 %)."""
    retry_after_max: float = 600.0
    """Cap on a Retry-After we honour: ARM RPC documents 10 min as its maximum."""
    default_timeout: float = 7200.0
    """How long a watch runs when the request names no timeout or deadline."""
    max_timeout: float = 86400.0
    """Longest timeout a request may ask for; longer ones are rejected."""
    not_found_grace: float = 300.0
    """How long 404s are retried: ARM replication lags right after an operation starts."""
    auth_failure_grace: float = 900.0
    """How long 401/403s are retried: new role assignments take minutes to propagate."""
    max_transient_failures: int = 10
    """Consecutive 5xx/timeouts/garbled answers tolerated before the watch fails."""
    low_read_budget: int = 50
    """Below this many remaining subscription reads, delays are stretched."""


def jitter_fraction(key: str, attempt: int) -> float:
    """A stable value in [-1, 1) per (watch, attempt): a redelivered step gets the same delay."""
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**63 - 1.0


def poll_delay(
    policy: PollPolicy,
    *,
    elapsed: float,
    consecutive_failures: int = 0,
    retry_after: float | None = None,
    remaining_reads: int | None = None,
    jitter: float = 0.0,
) -> float:
    """Seconds to wait before the next read.

    ``elapsed`` is the time since the watch was first seen; ``consecutive_failures``
    backs off exponentially after failed reads; ``jitter`` is a value in [-1, 1)
    (see ``jitter_fraction``); ``remaining_reads`` is ARM's
    ``x-ms-ratelimit-remaining-subscription-reads``.
    """
    delay = max(policy.min_delay, min(policy.max_delay, policy.growth * max(elapsed, 0.0)))
    if consecutive_failures > 0:
        backoff = policy.min_delay * 2 ** min(consecutive_failures - 1, 16)
        delay = max(delay, min(policy.max_delay, backoff))
    if remaining_reads is not None and remaining_reads < policy.low_read_budget:
        # The subscription's read bucket (shared with every other reader) is nearly
        # empty: slow down in proportion before ARM starts answering 429.
        scarcity = (policy.low_read_budget - max(remaining_reads, 0)) / policy.low_read_budget
        delay *= 1.0 + 3.0 * scarcity
    delay *= 1.0 + policy.jitter * jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max))
    return max(delay, 0.0)
