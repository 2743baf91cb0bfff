"""The polling benchmark's simulation: structure only, never its headline figures.

The figures (lag against the oracle, reads, 429s against the targets) are reported by
``python -m benchmarks.poll_policy`` and docs/performance.md; here small runs check that
the simulation is sound: every operation is seen to its end (or counted as missed), ours
reports each operation's own terminal status and never reads before Retry-After, the
fast engine gives exactly what the real ``decide`` gives, and the same seed gives the same
figures.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import pytest

from benchmarks.poll_policy import (
    HOPS,
    NO_HOPS,
    Answer,
    Arm,
    AzureCore,
    AzWait,
    Eager,
    Hops,
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
from benchmarks.poll_policy.commands.cost import (
    PRICES,
    billed_alone,
    billed_seconds,
    flex_month,
    github_month,
    one_seed,
    servicebus_month,
)
from benchmarks.poll_policy.pollers import Poller
from benchmarks.poll_policy.previous import BEFORE, previous_poll_delay
from benchmarks.poll_policy.simulation import hop_floor_lags, percentile
from ops_status.policy import PollPolicy, poll_delay

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


def test_the_hop_floor_is_the_oracle_when_the_hops_take_no_time(
    operations: list[Operation],
) -> None:
    assert hop_floor_lags(operations, SEED, NO_HOPS) == pytest.approx(
        oracle_lags(operations), abs=1e-6
    )
    with_hops = hop_floor_lags(operations, SEED, HOPS)
    assert all(
        lag == 0.0 for lag, op in zip(with_hops, operations, strict=True) if not op.retry_after
    )
    assert sum(with_hops) > sum(oracle_lags(operations))


def _unthrottled(operations: list[Operation]) -> Arm:
    return Arm(operations, SEED, bucket_size=1e12, refill=1e12)


@pytest.fixture(scope="module")
def senders(operations: list[Operation]) -> list[Operation]:
    """The operations that send Retry-After (the only ones with a floor above zero)."""
    return [
        replace(op, index=i)  # the simulation indexes its streams by position
        for i, op in enumerate(op for op in operations if op.retry_after is not None)
    ]


def test_the_oracle_is_what_reading_at_each_permitted_instant_gives(
    senders: list[Operation],
) -> None:
    # Given the operations that send Retry-After, read by the eager poller with no hops on
    # an ARM that never throttles: it is the oracle's schedule, run through the simulation.
    result = simulate(senders, Eager(1.0), SEED, hops=NO_HOPS, arm=_unthrottled(senders))

    assert result.early == 0
    assert result.lag == pytest.approx(oracle_lags(senders), abs=1e-6)


class _Impatient(Poller):
    """Not compliant: reads 1 s before Retry-After permits (and every 0.5 s otherwise)."""

    name = "impatient"
    in_process = True

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if not answer.throttled and answer.status != "Running":
            return None
        return answer.retry_after - 1.0 if answer.retry_after else 0.5


class _Recording(Poller):
    """Another poller, unchanged, with the time of every answer it is given."""

    def __init__(self, inner: Poller) -> None:
        self.inner = inner
        self.name = inner.name
        self.in_process = inner.in_process
        self.max_429_retries = inner.max_429_retries
        self.reads_operation_status = inner.reads_operation_status
        self.answered: dict[int, list[float]] = {}

    def start(self, op: Operation) -> None:
        self.inner.start(op)

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        self.answered.setdefault(op.index, []).append(now)
        return self.inner.next_delay(op, answer, now)


def _sooner_than_the_oracle(
    poller: Poller, operations: list[Operation], hops: Hops
) -> list[tuple[int, int]]:
    """(operation, k) wherever the poller's k-th answer comes before the oracle's k-th
    read, submit + k R, on an ARM that never throttles (a 429's Retry-After is shorter)."""
    recording = _Recording(poller)
    simulate(operations, recording, SEED, hops=hops, arm=_unthrottled(operations))
    return [
        (op.index, k)
        for op in operations
        if op.retry_after is not None
        for k, answered in enumerate(recording.answered[op.index])
        if answered < op.submit + k * op.retry_after - 1e-6
    ]


@pytest.mark.parametrize("hops", [NO_HOPS, HOPS], ids=["no hops", "hops"])
def test_no_compliant_poller_reads_an_operation_sooner_than_the_oracle(
    senders: list[Operation], hops: Hops
) -> None:
    # Given compliant pollers from the most eager down.
    eager_policy = PollPolicy(min_delay=1.0, growth=0.0, jitter=0.0, lead=30.0)
    pollers: list[Poller] = [
        Ours(PollPolicy()),
        Ours(eager_policy, "ours, 1 s flat, lead 30 s"),
        OursFast(BEFORE, "before", delay_function=previous_poll_delay),
        AzureCore(10.0),
        Eager(0.5),
    ]
    for poller in pollers:
        # Then none has its k-th answer before the oracle's k-th read: a compliant poller
        # can beat the oracle's lag on an operation only by luck of phase (reading later,
        # nearer the end), never by reading more often.
        assert _sooner_than_the_oracle(poller, senders, hops) == [], poller.name


def test_a_poller_that_reads_before_retry_after_is_caught_and_does_beat_the_oracle(
    senders: list[Operation],
) -> None:
    # The checks above can fail: a poller that reads 1 s before Retry-After permits is
    # counted early, reads sooner than the oracle, and gets below its floor.
    oracle = oracle_lags(senders)
    floor = percentile([lag / op.duration for lag, op in zip(oracle, senders, strict=True)], 95)

    result = simulate(senders, _Impatient(), SEED, hops=NO_HOPS, arm=_unthrottled(senders))

    assert result.early > 0
    assert _sooner_than_the_oracle(_Impatient(), senders, NO_HOPS)
    assert percentile(result.relative_lag, 95) < floor


def test_the_frozen_previous_schedule_is_todays_without_lead_where_the_budget_is_full() -> None:
    # previous.py differs from poll_delay only in the read-budget rule and the lead.
    today = replace(BEFORE, lead=0.0)
    for elapsed in (0.0, 5.0, 60.0, 400.0, 3000.0):
        for retry_after in (None, 10.0):
            for percent in (None, 40.0, 95.0):
                kwargs = dict(
                    elapsed=elapsed,
                    retry_after=retry_after,
                    remaining_reads=249,
                    jitter=0.3,
                    percent_complete=percent,
                    since_start=elapsed + 3.0,
                )
                assert previous_poll_delay(BEFORE, **kwargs) == poll_delay(today, **kwargs)


def test_the_previous_schedule_stretched_young_watches_at_most_thirty_times() -> None:
    # The old rule's x30 cap: a 3 s wait with the bucket empty waited 90 s, not 120 s.
    assert previous_poll_delay(BEFORE, elapsed=0.0, remaining_reads=0) == pytest.approx(90.0)
    assert poll_delay(PollPolicy(), elapsed=0.0, remaining_reads=0) > 300.0


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


def test_the_seeds_command_reports_the_oracle_the_hop_floor_and_the_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["seeds", "--operations", "60", "--seeds", "2", "--jobs", "1"]) == 0

    out = capsys.readouterr().out
    assert "| oracle + Service Bus hops (hop floor) |" in out
    assert "| ours before issue 13 |" in out
    assert "target rel p95 <= 1.10 x oracle (median seed)" in out


def test_the_fleet_command_runs_one_and_several_subscriptions_and_the_capacity_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["fleet", "--operations", "80", "--subscriptions", "1,4", "--jobs", "1"]
    assert main([*argv, "--capacity", "--sizes", "60", "--ceilings", "120"]) == 0

    out = capsys.readouterr().out
    assert "Fleet: 80 operations on 1 subscription(s)" in out
    assert "Fleet: 80 operations on 4 subscription(s)" in out
    assert "| 120 s | 60 |" in out


def test_each_read_is_recorded_as_one_call_from_its_request_to_its_answer(
    operations: list[Operation],
) -> None:
    result = simulate(operations, OursFast(PollPolicy(), "ours"), SEED, record_calls=True)

    assert result.calls is not None
    assert len(result.calls) == sum(result.reads)
    low, high = HOPS.arm
    assert all(low <= end - start <= high for start, end in result.calls)
    first = {op.index: op.submit for op in operations}
    assert min(start for start, _ in result.calls) == min(first.values())
    for op, stopped, lag in zip(operations, result.stopped, result.lag, strict=True):
        assert stopped == pytest.approx(op.end + lag)


def test_az_wait_holds_its_agent_until_it_sees_the_end_or_gives_up(
    operations: list[Operation],
) -> None:
    result = simulate(operations, AzWait(), SEED)

    # Gave up: 120 reads, 30 s apart, each its ARM round trip (an in-process poller pays no
    # other hop), the first at submission.
    low, high = HOPS.arm
    gave_up = (119 * 30.0 + 120 * low, 119 * 30.0 + 120 * high)
    assert result.missed > 0
    for op, stopped, lag in zip(operations, result.stopped, result.lag, strict=True):
        held = stopped - op.submit
        if math.isinf(lag):
            assert gave_up[0] <= held <= gave_up[1]
        else:
            assert held == pytest.approx(op.end + lag - op.submit)


def test_overlapping_executions_on_one_instance_are_billed_once_with_a_one_second_minimum() -> None:
    # Two overlapping executions: one busy period of 1.25 s, rounded up to 1.3 s.
    assert billed_seconds([(0.0, 1.0), (0.5, 1.25)], 32) == pytest.approx(1.3)
    # Two short ones apart: two periods, each billed the 1 s minimum.
    assert billed_seconds([(0.0, 0.2), (5.0, 5.3)], 32) == pytest.approx(2.0)
    # A period of exactly 1.2 s (1.6 - 0.4 / 0.1 is 12.000000000000002) is not rounded up
    # to 1.3 s by float noise.
    assert billed_seconds([(0.4, 1.6)], 32) == pytest.approx(1.2)
    # Three at once on instances of two: a second instance is busy while the third runs.
    assert billed_seconds([(0.0, 2.0), (0.0, 2.0), (0.5, 1.0)], 2) == pytest.approx(2.0 + 1.0)
    assert billed_alone([(0.0, 1.0), (0.5, 1.25), (3.0, 4.5)]) == pytest.approx(1.0 + 1.0 + 1.5)


@pytest.mark.parametrize("schedule", ["ours", "before"])
def test_the_cost_command_prices_both_sides_and_names_its_sources(
    capsys: pytest.CaptureFixture[str], schedule: str
) -> None:
    assert main(["cost", "--operations", "40", "--seeds", "2", "--schedule", schedule]) == 0

    out = capsys.readouterr().out
    assert f"cost, {schedule} schedule" in out
    assert "| Functions: total, dense |" in out
    assert "| `az ... wait` (30 s, its default 1 h timeout) |" in out
    assert "| the recipes' gate job, listening from submission" in out
    assert "1,000 watches a month, all in:" in out
    assert "Prices compiled 2026-12-02" in out
    assert "Price sources:" in out


def _cost_args(**changes: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "operations": 60,
        "schedule": "ours",
        "instance_mb": 2048,
        "per_instance": 16,
        "send_s": 0.03,
        "cpu_ms": 1.56,
        "subscribers": 2,
        "gate_timeout": 600.0,
        "az_long_timeout": 7800,
    }
    values.update(changes)
    return argparse.Namespace(**values)


def test_a_seeds_bill_adds_up_from_its_reads_and_the_price_sheet() -> None:
    args = _cost_args()
    row = one_seed(args, 5)
    operations = make_workload(60, 5)
    reads = simulate(operations, OursFast(PollPolicy(), "ours"), 5, record_calls=True)
    assert reads.calls is not None
    executions = len(reads.calls)
    tail = args.send_s + args.cpu_ms / 1000

    assert row["executions"] == executions
    assert row["exec_s"] == pytest.approx(sum(e - s for s, e in reads.calls) + executions * tail)
    assert row["sb_ops"] == 3 * executions + 60 * (1 + 2 * 2)
    assert row["dense_gb_s"] == pytest.approx(row["dense_s"] * 2.0)
    assert row["dense_usd"] == pytest.approx(row["dense_s"] * 2 * 0.000026 + executions * 0.4e-6)
    assert row["alone_s"] >= executions * 1.0  # at least the 1 s minimum each
    assert row["sb_usd"] == pytest.approx(row["sb_ops"] * 0.8e-6)
    assert row["gate_linux_usd"] == pytest.approx(row["gate_min_rounded"] * 0.006)
    assert row["gate_missed_pct"] > 0  # a 600 s gate misses the longer operations
    assert one_seed(_cost_args(instance_mb=512), 5)["dense_gb_s"] == pytest.approx(
        row["dense_s"] / 2
    )


def test_az_wait_that_gives_up_holds_its_agent_one_interval_past_its_last_check() -> None:
    row = one_seed(_cost_args(), 5)
    operations = make_workload(60, 5)
    waits = simulate(operations, AzWait(), 5)
    held = [stop - op.submit for op, stop in zip(operations, waits.stopped, strict=True)]

    assert waits.missed > 0
    assert row["az_min"] * 60 == pytest.approx(sum(held) + 30.0 * waits.missed)
    assert row["az_missed_pct"] == pytest.approx(100 * waits.missed / 60)
    assert row["az_long_missed_pct"] == 0  # 7,800 s outlasts the mix's longest operation


def test_a_month_is_billed_past_the_free_grants_and_the_included_amounts() -> None:
    assert flex_month(PRICES.flex_free_gb_s, PRICES.flex_free_executions) == 0
    assert flex_month(PRICES.flex_free_gb_s + 1000, 0) == pytest.approx(1000 * 0.000026)
    assert servicebus_month(13_000_000) == pytest.approx(0.0135 * 730)
    assert servicebus_month(14_000_000) == pytest.approx(0.0135 * 730 + 0.80)
    assert github_month(2_500, 2_000) == pytest.approx(500 * 0.006)
    assert github_month(1_500, 2_000) == 0
