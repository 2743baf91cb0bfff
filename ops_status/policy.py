"""PollPolicy: when to look again. Pure arithmetic, no clock, no randomness of its own.

The delay before the next status read grows with the time the watch has already spent
(an operation that has run for 10 minutes is unlikely to end in the next 5 seconds),
bounded by ``min_delay`` and ``max_delay``, spread by a deterministic jitter so that a
fleet of watches started together does not read ARM in lock-step. ARM's ``Retry-After``
is always honoured as a lower bound (clamped to ``retry_after_max``).

Two signals from ARM refine that schedule:

- ``percentComplete``: when the operation reports progress, the projected end
  (elapsed x (100 - p) / p) tells whether the end can come before the next regular look.
  Far from it, the wait grows (never past ``max_delay``, so the lag bound holds); when the
  projected end falls before the next regular look, the look is moved to it (never
  earlier than ``min_delay``, nor much earlier than the regular delay, so stalled or noisy
  progress cannot make a watch read in a tight loop).
- ``x-ms-ratelimit-remaining-subscription-reads``: the subscription's read bucket is
  shared by every reader. Below ``low_read_budget`` remaining reads, every watch stretches
  its delay by (low_read_budget / remaining)^2 (bounded), so a fleet of watches settles
  at the bucket's refill rate instead of running it dry and collecting 429s.

See docs/performance.md ("Polling policy (simulated)") for how the defaults were chosen.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

__all__ = ["PollPolicy", "jitter_fraction", "poll_delay"]

# A shortened delay (projected end before the next regular look) is never below this
# fraction of the regular delay: progress stalled at 99 % would otherwise project an end
# "any second now" on every read.
_SHORTEN_FLOOR = 0.5
# Progress below this many percent is mostly start-up noise (and integer rounding).
_PROGRESS_MIN_PERCENT = 2.0


@dataclass(frozen=True)
class PollPolicy:
    """Every knob of the polling behaviour. Most are app settings (see settings.py)."""

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
    low_read_budget: int = 125
    """Below this many remaining subscription reads (ARM's bucket holds 250), delays are
    stretched by (low_read_budget / remaining)^2, up to ``read_budget_stretch_max``."""
    read_budget_stretch_max: float = 20.0
    """Largest factor a low read budget stretches a delay by (never past ``retry_after_max``)."""
    progress_projection: bool = True
    """Use ARM's ``percentComplete`` to aim the next read at the projected end."""
    progress_margin: float = 0.15
    """How far progress may be off, as a fraction of the projected total duration: a
    lengthened wait ends this much before the projected end."""
    progress_lengthen_max: float = 3.0
    """A projection far from its end may lengthen the regular delay at most this many times
    (and never past ``max_delay``): an operation can still fail before its projected end."""


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
    percent_complete: float | None = None,
    since_start: float | None = None,
) -> float:
    """Seconds to wait before the next read.

    ``elapsed`` is the time since the watch was first seen; ``consecutive_failures``
    backs off exponentially after failed reads; ``jitter`` is a value in [-1, 1)
    (see ``jitter_fraction``); ``remaining_reads`` is ARM's
    ``x-ms-ratelimit-remaining-subscription-reads``; ``percent_complete`` is ARM's
    ``percentComplete`` and ``since_start`` the time since the operation started (ARM's
    ``startTime``; ``elapsed`` is used when it is None).

    The result is at least ``min_delay * (1 - jitter)`` and at most
    ``max(max_delay * (1 + jitter), retry_after_max)``, and never below ``retry_after``
    (clamped to ``retry_after_max``).
    """
    elapsed = elapsed if elapsed > 0.0 else 0.0  # also maps NaN to 0
    delay = max(policy.min_delay, min(policy.max_delay, policy.growth * elapsed))
    if consecutive_failures > 0:
        backoff = policy.min_delay * 2 ** min(consecutive_failures - 1, 16)
        delay = max(delay, min(policy.max_delay, backoff))
    elif policy.progress_projection and percent_complete is not None:
        delay = _aim_at_projected_end(
            policy, delay, percent_complete, elapsed if since_start is None else since_start
        )
    delay *= 1.0 + policy.jitter * jitter
    if remaining_reads is not None and remaining_reads < policy.low_read_budget:
        # The subscription's read bucket (shared with every other reader) is running low:
        # slow down, steeply as it empties, so that all readers together settle at the
        # bucket's refill rate before ARM starts answering 429.
        stretch = (policy.low_read_budget / (max(remaining_reads, 0) + 1)) ** 2
        stretched = delay * min(stretch, policy.read_budget_stretch_max)
        delay = max(delay, min(stretched, policy.retry_after_max))
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max))
    return max(delay, 0.0)


def _aim_at_projected_end(
    policy: PollPolicy, delay: float, percent: float, since_start: float
) -> float:
    """The regular ``delay`` moved towards the end that ``percent`` complete projects.

    Projected remaining time = since_start x (100 - p) / p. Noisy progress is allowed for
    by ``progress_margin``; the result stays within [min_delay, max_delay] and within a
    bounded factor of the regular delay.
    """
    if not (_PROGRESS_MIN_PERCENT <= percent < 100.0) or not (
        policy.min_delay <= since_start < math.inf
    ):
        return delay
    total = since_start * 100.0 / percent
    remaining = total - since_start
    earliest = remaining - policy.progress_margin * total
    if earliest > delay:
        # The end is not expected before the next regular look: look again shortly before
        # the earliest plausible end, within bounds.
        longest = min(policy.max_delay, delay * policy.progress_lengthen_max)
        return max(delay, min(earliest, longest))
    if remaining < delay:
        # The projected end falls before the next regular look: look at the projected end.
        return max(policy.min_delay, delay * _SHORTEN_FLOOR, remaining)
    return delay
