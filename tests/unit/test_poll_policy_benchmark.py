"""The polling benchmark's simulation: structure only, never its headline figures.

The figures (lag against the oracle, reads, 429s against the targets) are reported by
``python -m benchmarks.poll_policy`` and docs/performance.md; here small runs check that
the simulation is sound: every operation is seen to its end (or counted as missed), ours
reports each operation's own terminal status and never reads before Retry-After, the
fast engine gives exactly what the real ``decide`` gives, and the same seed gives the same
figures.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.poll_policy import (
    HOPS,
    NO_HOPS,
    Arm,
    AzureCore,
    AzWait,
    Operation,
    Ours,
    OursFast,
    Result,
    make_workload,
    measure,
    oracle_lags,
    simulate,
)
from benchmarks.poll_policy.cli import main
from ops_status.policy import PollPolicy

SEED = 11
COUNT = 300


@pytest.fixture(scope="module")
def operations() -> list[Operation]:
    return make_workload(COUNT, SEED)


@pytest.fixture(scope="module")
def ours(operations: list[Operation]) -> Result:
    return simulate(operations, Ours(PollPolicy()), SEED)


@pytest.fixture(scope="module")
def core_10(operations: list[Operation]) -> Result:
    return simulate(operations, AzureCore(10.0), SEED)


def test_workload_is_deterministic_and_shaped_as_described(operations: list[Operation]) -> None:
    assert make_workload(COUNT, SEED) == operations
    assert make_workload(COUNT, SEED + 1) != operations
    assert all(20.0 <= op.duration <= 7200.0 for op in operations)
    assert all(op.start < op.submit < op.end for op in operations)
    assert any(op.failed for op in operations)
    assert any(op.retry_after for op in operations)
    assert any(op.progress_rate for op in operations)


def test_a_fleet_over_several_subscriptions_paces_each_one_by_its_own_write_bucket() -> None:
    fleet = make_workload(400, SEED, fleet=True, subscriptions=4)

    assert len({op.subscription for op in fleet}) == 4
    assert max(op.start for op in fleet) < 2.0  # 100 per subscription: within the burst


def test_every_poller_sees_every_operation_end_with_at_least_one_read(
    operations: list[Operation], ours: Result, core_10: Result
) -> None:
    core_30 = simulate(operations, AzureCore(30.0), SEED)

    for result in (ours, core_10, core_30):
        assert result.detected == COUNT, result.name
        assert all(reads >= 1 for reads in result.reads), result.name
        assert all(lag >= 0 for lag in result.lag), result.name


def test_ours_finishes_each_watch_with_the_operations_own_status(ours: Result) -> None:
    assert ours.outcomes_ok


def test_no_poller_that_reads_the_status_reads_before_retry_after_permits(
    ours: Result, core_10: Result
) -> None:
    assert ours.early == 0
    assert core_10.early == 0


def test_az_wait_gives_up_after_an_hour_and_counts_as_a_miss(operations: list[Operation]) -> None:
    result = simulate(operations, AzWait(), SEED)

    # 120 reads 30 s (plus a round trip) apart: the last one about 3,570 s in.
    missed = [op for op in operations if math.isinf(result.lag[op.index])]
    assert missed
    assert all(op.end - op.submit > 119 * 30 for op in missed)
    assert all(op in missed for op in operations if op.end - op.submit > 3700)


def test_the_fast_engine_gives_exactly_what_decide_gives(operations: list[Operation]) -> None:
    policy = PollPolicy()
    for hops in (NO_HOPS, HOPS):
        real = simulate(operations, Ours(policy), SEED, hops=hops)
        fast = simulate(operations, OursFast(policy), SEED, hops=hops)

        assert fast.reads == real.reads
        assert fast.lag == real.lag
        assert fast.outcomes_ok


def test_the_fast_engine_matches_decide_through_throttling_too() -> None:
    fleet = make_workload(400, SEED, fleet=True)

    def small_bucket() -> Arm:  # so that ours, too, meets 429s and a low read budget
        return Arm(fleet, SEED, bucket_size=20, refill=1.0)

    real = simulate(fleet, Ours(PollPolicy()), SEED, arm=small_bucket())
    fast = simulate(fleet, OursFast(PollPolicy()), SEED, arm=small_bucket())

    assert sum(real.throttled) > 0
    assert (fast.reads, fast.throttled, fast.lag) == (real.reads, real.throttled, real.lag)


def test_the_oracle_reads_at_each_permitted_instant(operations: list[Operation]) -> None:
    lags = oracle_lags(operations)

    for op, lag in zip(operations, lags, strict=True):
        if op.retry_after is None:
            assert lag == 0.0
        else:
            assert 0.0 <= lag < op.retry_after
            assert (op.end + lag - op.submit) / op.retry_after == pytest.approx(
                round((op.end + lag - op.submit) / op.retry_after)
            )


def test_no_poller_beats_the_oracle_without_hops(operations: list[Operation]) -> None:
    oracle = oracle_lags(operations)
    result = simulate(operations, AzureCore(10.0), SEED, hops=NO_HOPS)

    row = measure(result, oracle, operations)

    assert row["ratio"] >= 1.0
    assert row["oracle_rel_p95"] > 0


def test_same_seed_same_figures(operations: list[Operation], ours: Result) -> None:
    again = simulate(make_workload(COUNT, SEED), Ours(PollPolicy()), SEED)

    assert again == ours
    oracle = oracle_lags(operations)
    assert measure(again, oracle, operations) == measure(ours, oracle, operations)


def test_ours_reads_less_than_a_10_second_poller(ours: Result, core_10: Result) -> None:
    assert sum(ours.reads) < sum(core_10.reads)


def test_a_one_subscription_fleet_runs_through_throttling() -> None:
    fleet = make_workload(400, SEED, fleet=True)

    result = simulate(fleet, AzureCore(10.0), SEED)

    assert result.detected + result.missed == len(fleet)
    assert sum(result.throttled) > 0  # the shared bucket does run dry for a naive poller


def test_the_historical_command_line_runs_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--operations", "60", "--fleet", "60", "--seed", "3", "--jobs", "1"]) == 0

    out = capsys.readouterr().out
    assert "Spread: 60 operations" in out
    assert "Fleet: 60 operations" in out
