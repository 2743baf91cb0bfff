"""PollPolicy: when to look again. Pure arithmetic, no clock, no randomness of its own.

The delay before the next status read grows with the time the watch has already spent
(an operation that has run for 10 minutes is unlikely to end in the next 5 seconds),
bounded by ``min_delay`` and ``max_delay``, spread by a deterministic jitter so that a
fleet of watches started together does not read ARM in lock-step. ARM's ``Retry-After``
is always honoured as a lower bound (clamped to ``retry_after_max``).

Two more signals from ARM refine that schedule:

- ``percentComplete``: the projected end, elapsed x (100 - p) / p, tells whether the end
  can come before the next regular look. Far from it, the wait grows a little (at most
  ``progress_lengthen_max`` times, never past ``max_delay``); when the projected end falls
  before the next regular look, the look moves to it (never below ``min_delay`` nor below
  half the regular delay, so stalled or noisy progress cannot make a watch spin).
- ``x-ms-ratelimit-remaining-subscription-reads``: the subscription's read bucket (250
  reads, refilled 25/s) is shared by every watch of the principal. Below
  ``low_read_budget`` remaining reads, every watch stretches its delay by
  (low_read_budget / (remaining + 1))^4, up to ``read_budget_max_delay``, and spreads the
  stretch by +/-50 %: the bucket refills in seconds while a watch reacts only at its next
  read, so without a wide spread the stretched watches come back together and drain it
  again. Near empty, young and old watches alike wait about the ceiling: a rollout's
  young watches are the many, and they would drain the bucket on their own.

Every wait is finally shortened by ``lead``, the typical hop latency of a poll cycle, so
that the read lands when the schedule meant it to; never below ``min_delay * (1 -
jitter)`` and never below Retry-After.

docs/performance.md ("Polling policy (simulated)") shows how the defaults were chosen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["PollPolicy", "jitter_fraction", "poll_delay"]

# Progress below this many percent is start-up noise (and integer rounding): not projected.
_PROGRESS_MIN_PERCENT = 2.0
# A look moved to the projected end is never earlier than this fraction of the regular
# delay: progress stalled at 99 % projects an end "any second now" on every read.
_SHORTEN_FLOOR = 0.5
# Steepness of the read-budget stretch, and the spread (+/-) of a stretched delay.
_BUDGET_EXPONENT = 4.0
_BUDGET_SPREAD = 0.5


@dataclass(frozen=True)
class PollPolicy:
    """Every knob of the polling behaviour. The first eleven, ``lead`` and
    ``read_budget_max_delay`` are app settings (settings.py)."""

    min_delay: float = 1.0
    """Shortest wait between two reads of one operation, in seconds (the hops of a poll
    cycle come on top of it)."""
    max_delay: float = 32.0
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
    token_failure_grace: float = 1800.0
    """How long the watch survives without a token (identity endpoint down, wrong client
    id): an identity-endpoint incident lasts minutes, not the seconds a redelivery loop takes."""
    low_read_budget: int = 250
    """Below this many remaining subscription reads (ARM's bucket holds 250), delays are
    stretched by (low_read_budget / (remaining + 1))^4: a full bucket stretches nothing."""
    read_budget_max_delay: float = 400.0
    """Longest delay a low read budget imposes, before its +/-50 % spread (and never past
    ``retry_after_max``). It sets how many watches one subscription carries (about 10,000
    operations started as fast as ARM's write bucket allows, at about 1 % 429s: 0.64 % on
    the median of 7 simulated seeds, 1.50 % on the worst) and the lag a rollout that
    saturates the bucket pays (about this much at p95): see docs/performance.md, "Fleet"."""
    progress_projection: bool = True
    """Use ARM's ``percentComplete`` to move the next read towards the projected end."""
    progress_margin: float = 0.15
    """How far progress may be off, as a fraction of the projected total duration: a
    lengthened wait ends at least this much before the projected end."""
    progress_lengthen_max: float = 1.25
    """Far from its projected end, the regular delay is lengthened at most this many times
    (and never past ``max_delay``): an operation can still fail before its projected end."""
    lead: float = 1.0
    """Seconds every computed wait is shortened by, so that the read lands when the
    schedule meant it to: the typical time from a follow-up's scheduled enqueue time to
    its status read answering (Service Bus scheduled delivery, trigger dispatch, the ARM
    round trip). Never below ``min_delay * (1 - jitter)``, and never below Retry-After:
    Retry-After bounds when the *request* may leave, and how short the hops before it can
    be is unknown, so only our own schedule is brought forward."""


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
    ``percentComplete`` and ``since_start`` the time since the operation started (from
    ARM's ``startTime``; ``elapsed`` stands in when it is None).

    The wait is shortened by ``policy.lead`` (the hops of the cycle make up the rest).
    The result is at least ``min_delay * (1 - jitter)``, at most
    ``max(max_delay * (1 + jitter), retry_after_max)``, and never below ``retry_after``
    (clamped to ``retry_after_max``).
    """
    elapsed = elapsed if elapsed > 0.0 else 0.0  # NaN counts as 0 too
    delay = max(policy.min_delay, min(policy.max_delay, policy.growth * elapsed))
    if consecutive_failures > 0:
        backoff = policy.min_delay * 2 ** min(consecutive_failures - 1, 16)
        delay = max(delay, min(policy.max_delay, backoff))
    elif policy.progress_projection and percent_complete is not None:
        delay = _aim_at_projected_end(
            policy, delay, percent_complete, elapsed if since_start is None else since_start
        )
    jittered = delay * (1.0 + policy.jitter * jitter)
    if remaining_reads is not None and remaining_reads < policy.low_read_budget:
        # The subscription's read bucket is being drawn down: slow down, steeply as it
        # empties, so that all readers together settle below its refill rate. Young and
        # old watches alike reach the ceiling near empty: young ones are the many.
        scarce = (policy.low_read_budget / (max(remaining_reads, 0) + 1)) ** _BUDGET_EXPONENT
        target = min(delay * scarce, policy.read_budget_max_delay)
        extra = max(target - delay, 0.0) * (1.0 + _BUDGET_SPREAD * jitter)
        jittered = max(jittered, min(delay + extra, policy.retry_after_max))
    # Bring the read forward by the typical hop latency, never below the shortest wait.
    delay = max(jittered - policy.lead, policy.min_delay * (1.0 - policy.jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max))
    return max(delay, 0.0)


def _aim_at_projected_end(
    policy: PollPolicy, delay: float, percent: float, since_start: float
) -> float:
    """The regular ``delay`` moved towards the end that ``percent`` complete projects.

    Projected remaining time = since_start x (100 - p) / p. The result stays within
    [min_delay, max_delay], within ``progress_lengthen_max`` times the regular delay, and
    at or above half of it.
    """
    if not _PROGRESS_MIN_PERCENT <= percent < 100.0:
        return delay
    # Too early to tell, or a startTime so old (30 x max_timeout) that it must be garbage.
    if not policy.min_delay <= since_start <= policy.max_timeout * 30:  # also rejects NaN
        return delay
    total = since_start * 100.0 / percent
    remaining = total - since_start
    earliest = remaining - policy.progress_margin * total
    if earliest > delay:
        # The end is not expected before the next regular look: look again a little later,
        # still before the earliest plausible end.
        return min(earliest, delay * policy.progress_lengthen_max, max(policy.max_delay, delay))
    if remaining < delay:
        # The projected end falls before the next regular look: look at the projected end.
        return max(policy.min_delay, delay * _SHORTEN_FLOOR, remaining)
    return delay
