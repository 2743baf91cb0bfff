"""The polling benchmark's simulation: structure only, never its headline figures.

The figures (lag, reads, 429s against the targets) are reported by
``python -m benchmarks.poll_policy`` and docs/performance.md; here a small run checks that
the simulation is sound: every operation is seen to its end by every poller, ours
reports each operation's own terminal status, and the same seed gives the same figures.
"""

from __future__ import annotations

import pytest

from benchmarks.poll_policy import (
    DotNet,
    Fixed,
    Operation,
    Ours,
    Result,
    make_workload,
    simulate,
)
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
def fixed_10(operations: list[Operation]) -> Result:
    return simulate(operations, Fixed(10.0), SEED)


def test_workload_is_deterministic_and_shaped_as_described(operations: list[Operation]) -> None:
    assert make_workload(COUNT, SEED) == operations
    assert make_workload(COUNT, SEED + 1) != operations
    assert all(20.0 <= op.duration <= 7200.0 for op in operations)
    assert all(op.start < op.submit < op.end for op in operations)
    assert any(op.failed for op in operations)
    assert any(op.retry_after for op in operations)
    assert any(op.progress_rate for op in operations)


def test_every_poller_sees_every_operation_end_with_at_least_one_read(
    operations: list[Operation], ours: Result, fixed_10: Result
) -> None:
    others = [simulate(operations, poller, SEED) for poller in (Fixed(30.0), DotNet())]

    for result in (ours, fixed_10, *others):
        assert result.detected == COUNT, result.name
        assert all(reads >= 1 for reads in result.reads), result.name
        assert all(lag >= 0 for lag in result.lag), result.name


def test_ours_finishes_each_watch_with_the_operations_own_status(ours: Result) -> None:
    assert ours.outcomes_ok


def test_same_seed_same_figures(ours: Result) -> None:
    again = simulate(make_workload(COUNT, SEED), Ours(PollPolicy()), SEED)

    assert again == ours
    assert again.row() == ours.row()


def test_ours_reads_less_than_a_fixed_10_second_poller(ours: Result, fixed_10: Result) -> None:
    assert sum(ours.reads) < sum(fixed_10.reads)


def test_a_one_subscription_fleet_runs_through_throttling() -> None:
    fleet = make_workload(400, SEED, fleet=True)

    result = simulate(fleet, Fixed(10.0), SEED)

    assert result.detected == len(fleet)
    assert sum(result.throttled) > 0  # the shared bucket does run dry for a naive poller
