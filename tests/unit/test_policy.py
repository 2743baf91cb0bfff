"""The poll policy: delays grow with elapsed time, within bounds, honouring Retry-After."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops_status.policy import PollPolicy, jitter_fraction, poll_delay

POLICY = PollPolicy(min_delay=5, max_delay=30, growth=0.1, jitter=0.1, retry_after_max=600)


def test_first_checks_are_short_and_later_ones_longer() -> None:
    assert poll_delay(POLICY, elapsed=0) == 5
    assert poll_delay(POLICY, elapsed=120) == 12
    assert poll_delay(POLICY, elapsed=3600) == 30


def test_retry_after_is_a_lower_bound_clamped_to_the_maximum() -> None:
    assert poll_delay(POLICY, elapsed=0, retry_after=45) == 45
    assert poll_delay(POLICY, elapsed=3600, retry_after=2) == 30
    assert poll_delay(POLICY, elapsed=0, retry_after=86400) == 600


def test_consecutive_failures_back_off_exponentially_up_to_max_delay() -> None:
    delays = [poll_delay(POLICY, elapsed=0, consecutive_failures=n) for n in range(1, 6)]

    assert delays == [5, 10, 20, 30, 30]


def test_low_remaining_read_budget_stretches_the_delay() -> None:
    plenty = poll_delay(POLICY, elapsed=120, remaining_reads=200)
    scarce = poll_delay(POLICY, elapsed=120, remaining_reads=5)

    assert plenty == 12
    assert scarce > 3 * plenty


def test_jitter_is_deterministic_per_watch_and_attempt() -> None:
    assert jitter_fraction("abc", 3) == jitter_fraction("abc", 3)
    assert jitter_fraction("abc", 3) != jitter_fraction("abc", 4)


@given(
    elapsed=st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    failures=st.integers(min_value=0, max_value=10_000),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e9),
    remaining=st.none() | st.integers(min_value=-5, max_value=10_000),
    jitter=st.floats(min_value=-1, max_value=0.999),
)
def test_delay_is_always_within_bounds(
    elapsed: float, failures: int, retry_after: float | None, remaining: int | None, jitter: float
) -> None:
    delay = poll_delay(
        POLICY,
        elapsed=elapsed,
        consecutive_failures=failures,
        retry_after=retry_after,
        remaining_reads=remaining,
        jitter=jitter,
    )

    assert delay >= POLICY.min_delay * (1 - POLICY.jitter)
    assert delay <= max(POLICY.max_delay * 4 * (1 + POLICY.jitter), POLICY.retry_after_max)
    if retry_after is not None:
        assert delay >= min(retry_after, POLICY.retry_after_max)
