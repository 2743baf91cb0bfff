"""The poll policy: delays grow with elapsed time, within bounds, honouring Retry-After."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops_status.policy import PollPolicy, jitter_fraction, poll_delay

# The schedule without the hop lead (its own tests below), budget knobs as documented.
POLICY = PollPolicy(
    min_delay=5,
    max_delay=30,
    growth=0.1,
    jitter=0.1,
    retry_after_max=600,
    lead=0,
    read_budget_max_delay=120,
)


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
    plenty = poll_delay(POLICY, elapsed=120, remaining_reads=249)  # a full bucket, minus us
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


# -- percentComplete: aim at the projected end -------------------------------------------


def test_far_from_the_projected_end_the_delay_grows_a_bounded_amount() -> None:
    regular = poll_delay(POLICY, elapsed=100)
    # 10 % after 100 s: about 900 s to go, far beyond the next regular look.
    far = poll_delay(POLICY, elapsed=100, percent_complete=10, since_start=100)

    assert regular == 10
    assert far == regular * POLICY.progress_lengthen_max


def test_lengthening_never_passes_max_delay() -> None:
    assert poll_delay(POLICY, elapsed=290, percent_complete=1.5 * 2, since_start=290) <= 30
    assert poll_delay(POLICY, elapsed=3600, percent_complete=5, since_start=3600) == 30


def test_a_projected_end_before_the_next_regular_look_moves_the_look_to_it() -> None:
    # 95 % after 200 s: about 10.5 s to go, while the regular delay is 20 s.
    delay = poll_delay(POLICY, elapsed=200, percent_complete=95, since_start=200)

    assert delay == pytest.approx(200 * 5 / 95)


def test_progress_stalled_near_the_end_never_makes_a_watch_spin() -> None:
    # Stuck at 99 % after 1,000 s: the projection says "10 s to go" on every read.
    delay = poll_delay(POLICY, elapsed=1000, percent_complete=99, since_start=1000)

    assert delay == POLICY.max_delay / 2
    assert poll_delay(POLICY, elapsed=30, percent_complete=99.9, since_start=30) == 5


def test_arms_start_time_projects_from_the_operations_real_start() -> None:
    # Watched for 200 s and 95 % done, but the operation started 2,000 s ago.
    from_start = poll_delay(POLICY, elapsed=200, percent_complete=95, since_start=2000)
    from_first_seen = poll_delay(POLICY, elapsed=200, percent_complete=95)

    assert from_start == 20  # ~105 s to go: the regular look comes first
    assert from_first_seen == pytest.approx(200 * 5 / 95)  # ~10.5 s to go


@pytest.mark.parametrize(
    ("percent", "since_start"),
    [(0, 100), (1, 100), (100, 100), (50, 0), (50, 2), (50, float("nan")), (float("nan"), 50)],
)
def test_progress_that_cannot_be_projected_leaves_the_regular_delay(
    percent: float, since_start: float
) -> None:
    assert poll_delay(POLICY, elapsed=100, percent_complete=percent, since_start=since_start) == 10


def test_projection_can_be_switched_off() -> None:
    off = PollPolicy(min_delay=5, max_delay=30, growth=0.1, progress_projection=False, lead=0)

    assert poll_delay(off, elapsed=200, percent_complete=95, since_start=200) == 20


def test_failures_back_off_whatever_the_last_progress_said() -> None:
    delay = poll_delay(
        POLICY, elapsed=200, consecutive_failures=3, percent_complete=95, since_start=200
    )

    assert delay == 20


# -- the hop lead -------------------------------------------------------------------------

LEADING = replace(POLICY, lead=1.5)


def test_the_lead_brings_our_own_schedule_forward_by_the_hop_latency() -> None:
    assert poll_delay(POLICY, elapsed=120) == 12
    assert poll_delay(LEADING, elapsed=120) == 10.5
    assert poll_delay(LEADING, elapsed=3600) == POLICY.max_delay - 1.5


def test_the_lead_never_takes_a_wait_below_the_shortest_wait() -> None:
    assert poll_delay(LEADING, elapsed=0) == POLICY.min_delay * (1 - POLICY.jitter)
    assert poll_delay(LEADING, elapsed=0, jitter=-1.0) == POLICY.min_delay * (1 - POLICY.jitter)


def test_the_lead_never_takes_a_wait_below_retry_after() -> None:
    # Retry-After bounds when the request may leave; the hops before it may be near zero.
    assert poll_delay(LEADING, elapsed=0, retry_after=10) == 10
    assert poll_delay(LEADING, elapsed=3600, retry_after=45) == 45


@given(
    elapsed=st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    failures=st.integers(min_value=0, max_value=40),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e9),
    remaining=st.none() | st.integers(min_value=-5, max_value=10_000),
    jitter=st.floats(min_value=-1, max_value=0.999),
    lead=st.floats(min_value=0, max_value=60),
)
def test_a_lead_keeps_the_delay_within_its_bounds(
    elapsed: float,
    failures: int,
    retry_after: float | None,
    remaining: int | None,
    jitter: float,
    lead: float,
) -> None:
    policy = replace(POLICY, lead=lead)
    kwargs = {
        "elapsed": elapsed,
        "consecutive_failures": failures,
        "retry_after": retry_after,
        "remaining_reads": remaining,
        "jitter": jitter,
    }

    delay = poll_delay(policy, **kwargs)  # type: ignore[arg-type]

    assert delay >= POLICY.min_delay * (1 - POLICY.jitter)
    assert delay <= poll_delay(POLICY, **kwargs)  # type: ignore[arg-type]
    assert delay <= max(POLICY.max_delay * (1 + POLICY.jitter), POLICY.retry_after_max)
    if retry_after is not None:
        assert delay >= min(retry_after, POLICY.retry_after_max)


# -- remaining subscription reads -------------------------------------------------------


def test_the_stretch_grows_as_the_read_budget_empties() -> None:
    delays = [
        poll_delay(POLICY, elapsed=120, remaining_reads=r) for r in (250, 249, 200, 150, 100, 50, 0)
    ]

    assert delays[:2] == [12, 12]  # a full bucket (250, or 249 after our read): no stretch
    assert delays == sorted(delays)
    assert delays[2] > 12
    assert delays[-1] == POLICY.read_budget_max_delay


def test_near_an_empty_bucket_young_and_old_watches_alike_wait_the_ceiling() -> None:
    young = poll_delay(POLICY, elapsed=0, remaining_reads=0)
    old = poll_delay(POLICY, elapsed=3600, remaining_reads=0)

    assert young == old == POLICY.read_budget_max_delay


def test_a_stretched_delay_is_bounded_and_spread_wider_than_the_jitter() -> None:
    low = poll_delay(POLICY, elapsed=3600, remaining_reads=0, jitter=-1.0)
    high = poll_delay(POLICY, elapsed=3600, remaining_reads=0, jitter=0.999)

    # The stretch beyond the regular 30 s is spread +/-50 %, much wider than the jitter.
    extra = POLICY.read_budget_max_delay - POLICY.max_delay
    assert low == pytest.approx(POLICY.max_delay + extra * 0.5)
    assert high == pytest.approx(POLICY.max_delay + extra * 1.4995)


def test_the_stretch_never_shortens_and_never_passes_retry_after_max() -> None:
    tight = PollPolicy(
        min_delay=5, max_delay=30, retry_after_max=40, read_budget_max_delay=120, lead=0
    )

    assert poll_delay(tight, elapsed=3600, remaining_reads=0, jitter=0.999) == 40
    # a young watch whose stretched delay, spread low, would fall below its own delay
    young = poll_delay(POLICY, elapsed=0, remaining_reads=199, jitter=-1.0)
    assert young >= POLICY.min_delay * (1 - POLICY.jitter)


@given(
    elapsed=st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    failures=st.integers(min_value=0, max_value=40),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e9),
    remaining=st.none() | st.integers(min_value=-5, max_value=10_000),
    jitter=st.floats(min_value=-1, max_value=0.999),
    percent=st.none() | st.floats(min_value=0, max_value=100),
    since_start=st.none() | st.floats(min_value=0, max_value=1e12),
)
def test_delay_with_progress_is_always_within_bounds(
    elapsed: float,
    failures: int,
    retry_after: float | None,
    remaining: int | None,
    jitter: float,
    percent: float | None,
    since_start: float | None,
) -> None:
    delay = poll_delay(
        POLICY,
        elapsed=elapsed,
        consecutive_failures=failures,
        retry_after=retry_after,
        remaining_reads=remaining,
        jitter=jitter,
        percent_complete=percent,
        since_start=since_start,
    )

    assert delay >= POLICY.min_delay * (1 - POLICY.jitter)
    assert delay <= max(POLICY.max_delay * (1 + POLICY.jitter), POLICY.retry_after_max)
    if remaining is None or remaining >= POLICY.low_read_budget:
        assert delay <= max(
            POLICY.max_delay * (1 + POLICY.jitter), min(retry_after or 0, POLICY.retry_after_max)
        )
    if retry_after is not None:
        assert delay >= min(retry_after, POLICY.retry_after_max)
