"""The poll schedule as it was before issue 13, frozen here for the "before" figures.

``previous_poll_delay`` is ``ops_status.policy.poll_delay`` as of commit 2bbd837
(defaults ``min_delay`` 3 s, ``max_delay`` 30 s, ``growth`` 0.08, no ``lead``): the same
growth, jitter, back-off, progress projection and Retry-After rules, and the read-budget
stretch of that time, (``low_read_budget`` / (remaining + 1))^3 below 200 remaining
reads, capped at x30 and at 120 s, spread +/-50 %. It takes today's ``PollPolicy`` for the
fields both versions share (``BEFORE`` holds the old values) and ignores ``lead``, which
did not exist. Kept only so that "before" rows are the old code, not an approximation.
"""

from __future__ import annotations

from dataclasses import replace

from ops_status.policy import PollPolicy

BEFORE = PollPolicy(
    min_delay=3.0,
    max_delay=30.0,
    growth=0.08,
    lead=0.0,
    low_read_budget=200,
    read_budget_max_delay=120.0,
)
"""The defaults before issue 13 (``lead`` did not exist: 0)."""

# The constants of the old module.
_PROGRESS_MIN_PERCENT = 2.0
_SHORTEN_FLOOR = 0.5
_BUDGET_EXPONENT = 3.0
_BUDGET_SPREAD = 0.5
_READ_BUDGET_STRETCH_MAX = 30.0  # then the PollPolicy field read_budget_stretch_max


def previous_poll_delay(
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
    """The old ``poll_delay``, line for line (see the module docstring)."""
    policy = replace(policy, lead=0.0)
    elapsed = elapsed if elapsed > 0.0 else 0.0
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
        stretch = (policy.low_read_budget / (max(remaining_reads, 0) + 1)) ** _BUDGET_EXPONENT
        stretched = min(
            delay * min(stretch, _READ_BUDGET_STRETCH_MAX), policy.read_budget_max_delay
        )
        stretched *= 1.0 + _BUDGET_SPREAD * jitter
        jittered = max(jittered, min(stretched, policy.retry_after_max))
    delay = jittered
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max))
    return max(delay, 0.0)


def _aim_at_projected_end(
    policy: PollPolicy, delay: float, percent: float, since_start: float
) -> float:
    if not _PROGRESS_MIN_PERCENT <= percent < 100.0:
        return delay
    if not policy.min_delay <= since_start <= policy.max_timeout * 30:
        return delay
    total = since_start * 100.0 / percent
    remaining = total - since_start
    earliest = remaining - policy.progress_margin * total
    if earliest > delay:
        return min(earliest, delay * policy.progress_lengthen_max, max(policy.max_delay, delay))
    if remaining < delay:
        return max(policy.min_delay, delay * _SHORTEN_FLOOR, remaining)
    return delay
