"""The decision function: one action for every (request, observation, now).

Long because ``decide`` is the product's one judgement: a test per branch.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_status.clock import format_time
from ops_status.decision import FinalStatus, Finish, Reason, Reschedule, decide
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.policy import PollPolicy
from ops_status.request import FailureStreak, WatchRequest, parse_watch_request, start_state
from tests.conftest import sample_bytes

ARM = "https://management.azure.com"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
POLICY = PollPolicy(
    min_delay=5,
    max_delay=30,
    growth=0.1,
    jitter=0.1,
    default_timeout=3600,
    not_found_grace=300,
    auth_failure_grace=900,
    max_transient_failures=3,
)
NESTED_ERROR = {"code": "ResourceOperationFailure", "details": [{"code": "QuotaExceeded"}]}


def fresh() -> WatchRequest:
    return parse_watch_request(sample_bytes("watch-parts.json"), arm_endpoint=ARM)


def run(
    observations: list[object], *, start: WatchRequest | None = None, now: datetime = T0
) -> list[object]:
    """Feed observations one after another, as the chain of queue messages would."""
    request = start or fresh()
    actions = []
    for observation in observations:
        action = decide(request, observation, now, POLICY)  # type: ignore[arg-type]
        actions.append(action)
        if isinstance(action, Finish):
            break
        request = action.next_request
        now = action.not_before
    return actions


def test_running_reschedules_with_state_carried_forward() -> None:
    action = decide(fresh(), StatusRead("Running", percent_complete=10), T0, POLICY)

    assert isinstance(action, Reschedule)
    state = action.next_request.state
    assert state is not None
    assert state.attempt == 1
    assert state.first_seen == T0
    assert state.deadline == T0 + timedelta(seconds=3600)  # the request's own timeout
    assert state.last_status == "Running"
    assert POLICY.min_delay * 0.9 <= action.delay <= POLICY.min_delay * 1.1
    assert action.not_before == T0 + timedelta(seconds=action.delay)


def test_the_poll_state_records_the_progress_of_the_last_status_read() -> None:
    # given a read with progress, then one without, then a failed read
    transient = ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 503", 503)
    actions = run([StatusRead("Running", percent_complete=40), transient])
    later = run([StatusRead("Running", percent_complete=40), StatusRead("Running")])

    # then the progress travels with the status it came with; a failed read keeps what
    # was last seen, and a read without progress clears it
    states = [a.next_request.state for a in actions if isinstance(a, Reschedule)]
    assert [(s.last_status, s.percent_complete) for s in states if s] == [
        ("Running", 40.0),
        ("Running", 40.0),
    ]
    final = later[-1]
    assert isinstance(final, Reschedule)
    assert final.next_request.state is not None
    assert final.next_request.state.percent_complete is None


def test_success_after_several_polls_finishes_once_with_the_poll_count() -> None:
    actions = run([StatusRead("Running")] * 4 + [StatusRead("Succeeded", end_time="e")])

    final = actions[-1]
    assert isinstance(final, Finish)
    assert final.outcome.status is FinalStatus.SUCCEEDED
    assert final.outcome.reason is None
    assert final.outcome.end_time == "e"
    assert final.request.state is not None
    assert final.request.state.attempt == 5
    assert all(isinstance(a, Reschedule) for a in actions[:-1])


def test_delays_grow_with_time_spent() -> None:
    actions = run([StatusRead("Running")] * 40)

    delays = [a.delay for a in actions if isinstance(a, Reschedule)]
    assert delays[0] < delays[-1]
    assert max(delays) <= POLICY.max_delay * (1 + POLICY.jitter)


@pytest.mark.parametrize(
    ("status", "final", "reason"),
    [
        ("Failed", FinalStatus.FAILED, Reason.OPERATION_FAILED),
        ("Canceled", FinalStatus.CANCELED, Reason.OPERATION_CANCELED),
        ("Cancelled", FinalStatus.CANCELED, Reason.OPERATION_CANCELED),
        ("completed", FinalStatus.SUCCEEDED, None),
    ],
)
def test_terminal_statuses_finish_with_arm_error_intact(
    status: str, final: FinalStatus, reason: Reason | None
) -> None:
    action = decide(fresh(), StatusRead(status, error=NESTED_ERROR), T0, POLICY)

    assert isinstance(action, Finish)
    assert action.outcome.status is final
    assert action.outcome.reason is reason
    if final is not FinalStatus.SUCCEEDED:
        assert action.outcome.error == NESTED_ERROR


def test_throttling_waits_retry_after_without_counting_a_failure() -> None:
    action = decide(
        fresh(), ReadFailure(ReadFailureKind.THROTTLED, "429", 429, retry_after=45), T0, POLICY
    )

    assert isinstance(action, Reschedule)
    assert action.delay == 45
    assert action.next_request.state is not None
    assert action.next_request.state.consecutive_failures == 0


def test_throttling_without_retry_after_waits_the_arm_default_of_60_seconds() -> None:
    action = decide(fresh(), ReadFailure(ReadFailureKind.THROTTLED, "429", 429), T0, POLICY)

    assert isinstance(action, Reschedule)
    assert action.delay == 60


def test_transient_failures_are_retried_a_bounded_number_of_times() -> None:
    failure = ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 503", 503)

    actions = run([failure] * 10)

    assert [type(a) for a in actions] == [Reschedule] * 3 + [Finish]
    final = actions[-1]
    assert isinstance(final, Finish)
    assert final.outcome.status is FinalStatus.FAILED
    assert final.outcome.reason is Reason.STATUS_UNREADABLE


def test_a_good_read_resets_the_failure_count() -> None:
    failure = ReadFailure(ReadFailureKind.MALFORMED, "garbled", 200)

    actions = run(
        [
            failure,
            failure,
            failure,
            StatusRead("Running"),
            failure,
            failure,
            failure,
            StatusRead("Succeeded"),
        ]
    )

    final = actions[-1]
    assert isinstance(final, Finish)
    assert final.outcome.status is FinalStatus.SUCCEEDED


def test_not_found_is_retried_within_the_grace_then_fails_distinctly() -> None:
    not_found = ReadFailure(ReadFailureKind.NOT_FOUND, "HTTP 404", 404, {"code": "NotFound"})

    actions = run([not_found] * 200)

    final = actions[-1]
    assert isinstance(final, Finish)
    assert final.outcome.reason is Reason.OPERATION_NOT_FOUND
    assert final.outcome.error == {"code": "NotFound"}
    delays = [a.delay for a in actions if isinstance(a, Reschedule)]
    assert sum(delays) >= POLICY.not_found_grace > sum(delays[:-1])


def test_not_found_right_after_start_then_found_continues() -> None:
    not_found = ReadFailure(ReadFailureKind.NOT_FOUND, "HTTP 404", 404)

    actions = run([not_found, not_found, StatusRead("Running"), StatusRead("Succeeded")])

    final = actions[-1]
    assert isinstance(final, Finish)
    assert final.outcome.status is FinalStatus.SUCCEEDED


def test_authorization_failures_are_retried_for_the_grace_then_fail_with_arms_error() -> None:
    forbidden = ReadFailure(
        ReadFailureKind.UNAUTHORIZED, "HTTP 403", 403, {"code": "AuthorizationFailed"}
    )

    actions = run([forbidden] * 500)

    final = actions[-1]
    assert isinstance(final, Finish)
    assert final.outcome.reason is Reason.STATUS_READ_UNAUTHORIZED
    assert final.outcome.error == {"code": "AuthorizationFailed"}
    delays = [a.delay for a in actions if isinstance(a, Reschedule)]
    assert sum(delays) >= POLICY.auth_failure_grace > sum(delays[:-1])


def test_other_client_errors_fail_at_once_with_arms_error() -> None:
    rejected = ReadFailure(
        ReadFailureKind.REJECTED, "HTTP 400", 400, {"code": "InvalidApiVersionParameter"}
    )

    action = decide(fresh(), rejected, T0, POLICY)

    assert isinstance(action, Finish)
    assert action.outcome.reason is Reason.STATUS_READ_REJECTED
    assert action.outcome.error == {"code": "InvalidApiVersionParameter"}


def test_each_kind_of_failure_is_judged_against_its_own_limit() -> None:
    # 615 s of 403s (under the 900 s grace), then one 500: one transient failure, not the
    # fourth in a row (max_transient_failures is 3 here), so the watch goes on.
    forbidden = ReadFailure(ReadFailureKind.UNAUTHORIZED, "HTTP 403", 403)
    server_error = ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 500", 500)
    request, now = fresh(), T0
    while now < T0 + timedelta(seconds=615):
        action = decide(request, forbidden, now, POLICY)
        assert isinstance(action, Reschedule)
        request, now = action.next_request, action.not_before

    action = decide(request, server_error, now, POLICY)

    assert isinstance(action, Reschedule)
    assert action.next_request.state is not None
    streaks = action.next_request.state.streaks
    assert streaks["Transient"].count == 1
    assert streaks["Unauthorized"].count > 3


def test_a_good_read_clears_every_streak() -> None:
    actions = run(
        [
            ReadFailure(ReadFailureKind.NOT_FOUND, "HTTP 404", 404),
            ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 500", 500),
            StatusRead("Running"),
        ]
    )

    last = actions[-1]
    assert isinstance(last, Reschedule)
    assert last.next_request.state is not None
    assert last.next_request.state.streaks == {}
    assert last.next_request.state.consecutive_failures == 0


@pytest.mark.parametrize(
    "failure",
    [
        ReadFailure(ReadFailureKind.REJECTED, "HTTP 400", 400),
        ReadFailure(ReadFailureKind.TOKEN_UNAVAILABLE, "no token"),
    ],
)
def test_a_redelivered_step_never_gives_up_it_schedules_the_same_next_poll(
    failure: ReadFailure,
) -> None:
    # Its first run may have scheduled attempt 1 and died: a give-up here could contradict
    # that chain's later event. The same next poll (same MessageId) is deduplicated.
    state = start_state(fresh(), T0 - timedelta(minutes=30), POLICY)
    request = fresh().with_state(state)
    if failure.kind is ReadFailureKind.TOKEN_UNAVAILABLE:
        request = request.with_state(
            replace(
                state, streaks={"TokenUnavailable": FailureStreak(5, T0 - timedelta(minutes=30))}
            )
        )
    policy = replace(POLICY, token_failure_grace=600)

    first = decide(request, failure, T0, policy)
    again = decide(request, failure, T0, policy, redelivered=True)

    assert isinstance(first, Finish)
    assert isinstance(again, Reschedule)
    assert again.next_request.state == first.request.state  # the same attempt, same id
    assert again.delay == policy.min_delay


def test_a_redelivered_step_still_finishes_on_what_arm_says() -> None:
    action = decide(fresh(), StatusRead("Failed"), T0, POLICY, redelivered=True)

    assert isinstance(action, Finish)
    assert action.outcome.status is FinalStatus.FAILED


def test_past_the_deadline_the_watch_times_out_with_the_last_status_seen() -> None:
    first = decide(fresh(), StatusRead("Provisioning"), T0, POLICY)
    assert isinstance(first, Reschedule)

    late = decide(first.next_request, StatusRead("Running"), T0 + timedelta(hours=2), POLICY)

    assert isinstance(late, Finish)
    assert late.outcome.status is FinalStatus.TIMED_OUT
    assert late.outcome.reason is Reason.DEADLINE_EXCEEDED
    assert late.outcome.arm_status == "Running"


def test_a_terminal_status_wins_over_an_expired_deadline() -> None:
    first = decide(fresh(), StatusRead("Running"), T0, POLICY)
    assert isinstance(first, Reschedule)

    late = decide(first.next_request, StatusRead("Succeeded"), T0 + timedelta(hours=2), POLICY)

    assert isinstance(late, Finish)
    assert late.outcome.status is FinalStatus.SUCCEEDED


def test_the_last_check_is_scheduled_at_the_deadline_not_after_it() -> None:
    first = decide(fresh(), StatusRead("Running"), T0, POLICY)
    assert isinstance(first, Reschedule)
    state = first.next_request.state
    assert state is not None
    almost = state.deadline - timedelta(seconds=2)

    action = decide(first.next_request, StatusRead("Running"), almost, POLICY)

    assert isinstance(action, Reschedule)
    assert action.not_before == state.deadline


def test_same_inputs_give_the_same_action() -> None:
    observation = StatusRead("Running")

    assert decide(fresh(), observation, T0, POLICY) == decide(fresh(), observation, T0, POLICY)


_observations = st.one_of(
    st.builds(
        StatusRead,
        status=st.sampled_from(
            ["Running", "Succeeded", "Failed", "Canceled", "Weird", "completed"]
        ),
        percent_complete=st.none() | st.floats(min_value=0, max_value=100),
        retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
        remaining_reads=st.none() | st.integers(min_value=0, max_value=300),
    ),
    st.builds(
        ReadFailure,
        kind=st.sampled_from(list(ReadFailureKind)),
        detail=st.text(max_size=10),
        http_status=st.none() | st.integers(min_value=100, max_value=599),
        retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_observations, min_size=1, max_size=30), st.floats(min_value=0, max_value=1e5))
def test_decide_is_total_and_chains_never_outlive_their_deadline(
    observations: list[object], offset: float
) -> None:
    request = fresh()
    now = T0 + timedelta(seconds=offset)
    for observation in observations:
        action = decide(request, observation, now, POLICY)  # type: ignore[arg-type]
        assert isinstance(action, (Reschedule, Finish))
        if isinstance(action, Finish):
            return
        state = action.next_request.state
        assert state is not None
        assert action.delay >= 0
        assert action.not_before <= state.deadline
        request, now = action.next_request, action.not_before


# -- percentComplete and the read budget, through decide ---------------------------------


def _second_read(observation: StatusRead, *, after: float = 200) -> Reschedule:
    """The action after a first Running read at T0 and ``observation`` ``after`` s later."""
    first = decide(fresh(), StatusRead("Running"), T0, POLICY)
    assert isinstance(first, Reschedule)
    action = decide(first.next_request, observation, T0 + timedelta(seconds=after), POLICY)
    assert isinstance(action, Reschedule)
    return action


def test_progress_near_its_end_brings_the_next_read_forward() -> None:
    started = format_time(T0)
    regular = _second_read(StatusRead("Running", start_time=started))
    near_end = _second_read(StatusRead("Running", percent_complete=95, start_time=started))

    assert near_end.delay < regular.delay
    assert near_end.delay >= POLICY.min_delay * (1 - POLICY.jitter)
    projected = 200 * 5 / 95
    assert projected * 0.9 <= near_end.delay <= projected * 1.1


def test_progress_far_from_its_end_spares_a_read_within_max_delay() -> None:
    regular = _second_read(StatusRead("Running"))
    far = _second_read(StatusRead("Running", percent_complete=5, start_time=format_time(T0)))

    assert far.delay > regular.delay
    assert far.delay <= POLICY.max_delay * (1 + POLICY.jitter)


def test_projection_uses_arms_start_time_when_the_watch_began_late() -> None:
    # 95 % done, 200 s after the watch began, but ARM says the operation began 2,000 s ago:
    # about 105 s to go, so no early read.
    late = _second_read(
        StatusRead(
            "Running", percent_complete=95, start_time=format_time(T0 - timedelta(seconds=1800))
        )
    )
    regular = _second_read(StatusRead("Running"))

    assert late.delay == pytest.approx(regular.delay)


@pytest.mark.parametrize(
    "start_time",
    [None, "yesterday", "2026-11-28T12:00:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"],
)
def test_unusable_start_times_fall_back_to_the_first_seen_time(start_time: str | None) -> None:
    odd = _second_read(StatusRead("Running", percent_complete=95, start_time=start_time))
    first_seen = _second_read(StatusRead("Running", percent_complete=95))

    assert odd.delay == first_seen.delay


def test_a_low_read_budget_stretches_running_reads() -> None:
    plenty = _second_read(StatusRead("Running", remaining_reads=249))
    scarce = _second_read(StatusRead("Running", remaining_reads=3))

    assert scarce.delay > 3 * plenty.delay


def test_a_429_with_an_empty_budget_waits_longer_than_its_retry_after() -> None:
    throttled = ReadFailure(
        ReadFailureKind.THROTTLED, "HTTP 429", 429, retry_after=5, remaining_reads=0
    )

    action = decide(fresh(), throttled, T0, POLICY)

    assert isinstance(action, Reschedule)
    assert action.delay > 5
    assert action.delay <= POLICY.read_budget_max_delay * 1.5
    assert action.next_request.state is not None
    assert action.next_request.state.consecutive_failures == 0


_progress_reads = st.builds(
    StatusRead,
    status=st.sampled_from(["Running", "Provisioning", "Succeeded", "Failed"]),
    percent_complete=st.none() | st.floats(min_value=0, max_value=100),
    start_time=st.none()
    | st.text(max_size=40)
    | st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(timezone.utc),
    ).map(format_time),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
    remaining_reads=st.none() | st.integers(min_value=0, max_value=300),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_progress_reads, min_size=1, max_size=30), st.floats(min_value=0, max_value=1e5))
def test_decide_stays_total_and_bounded_with_progress_and_start_times(
    observations: list[StatusRead], offset: float
) -> None:
    request = fresh()
    now = T0 + timedelta(seconds=offset)
    for observation in observations:
        action = decide(request, observation, now, POLICY)
        assert isinstance(action, (Reschedule, Finish))
        if isinstance(action, Finish):
            return
        state = action.next_request.state
        assert state is not None
        assert (
            0 <= action.delay <= max(POLICY.max_delay * (1 + POLICY.jitter), POLICY.retry_after_max)
        )
        assert action.not_before <= state.deadline
        request, now = action.next_request, action.not_before


def test_timed_out_outcome_keeps_the_details_of_the_last_read() -> None:
    first = decide(fresh(), StatusRead("Running"), T0, POLICY)
    assert isinstance(first, Reschedule)
    last_read = StatusRead(
        "Running",
        percent_complete=70,
        start_time="2026-11-28T11:59:00.000Z",
        name="op-name",
        resource_id="/subscriptions/x/operationsStatus/op",
    )

    late = decide(first.next_request, last_read, T0 + timedelta(hours=2), POLICY)

    assert isinstance(late, Finish)
    assert late.outcome.status is FinalStatus.TIMED_OUT
    assert late.outcome.percent_complete == 70
    assert late.outcome.operation_name == "op-name"
    assert late.outcome.resource_id == "/subscriptions/x/operationsStatus/op"
    assert late.outcome.start_time == "2026-11-28T11:59:00.000Z"


def test_a_follow_up_is_scheduled_early_by_the_lead_but_never_before_retry_after() -> None:
    leading, plain = replace(POLICY, lead=1.5), replace(POLICY, lead=0)
    later = T0 + timedelta(seconds=200)
    first = decide(fresh(), StatusRead("Running"), T0, plain)
    assert isinstance(first, Reschedule)

    def second(policy: PollPolicy, read: StatusRead) -> Reschedule:
        action = decide(first.next_request, read, later, policy)
        assert isinstance(action, Reschedule)
        return action

    assert second(leading, StatusRead("Running")).delay == pytest.approx(
        second(plain, StatusRead("Running")).delay - 1.5
    )
    assert second(leading, StatusRead("Running", retry_after=60)).delay == 60
