"""The product must accept what it wrote: every poll it schedules parses again, whatever ARM
answered and whatever valid settings the next step runs with (settings change between
deployments while watches are in flight)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ops_status.bootstrap import build_dependencies
from ops_status.handler import handle_watch_message
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.request import parse_poll_message
from ops_status.settings import Settings, load_settings
from tests.conftest import BASE_ENVIRONMENT
from tests.fakes import RecordingOutputs, ScriptedStatusReader, intake_message, poll_message

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
SUB = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"


@st.composite
def valid_settings(draw: st.DrawFn) -> Settings:
    max_timeout = draw(st.integers(min_value=10, max_value=7 * 86400))
    default_timeout = draw(st.integers(min_value=10, max_value=max_timeout))
    min_delay = draw(st.integers(min_value=1, max_value=600))
    max_delay = draw(st.integers(min_value=min_delay, max_value=3600))
    return load_settings(
        BASE_ENVIRONMENT,
        OPS_STATUS_MAX_TIMEOUT=str(max_timeout),
        OPS_STATUS_DEFAULT_TIMEOUT=str(default_timeout),
        OPS_STATUS_POLL_MIN_DELAY=str(min_delay),
        OPS_STATUS_POLL_MAX_DELAY=str(max_delay),
        OPS_STATUS_POLL_JITTER=str(draw(st.sampled_from(["0", "0.1", "0.5"]))),
        OPS_STATUS_MAX_TRANSIENT_FAILURES=str(draw(st.integers(min_value=0, max_value=20))),
    )


_status_text = st.text(min_size=1, max_size=80).filter(lambda s: s.strip() != "")
observations = st.one_of(
    st.builds(
        StatusRead,
        status=_status_text,
        percent_complete=st.none() | st.floats(min_value=0, max_value=100),
        retry_after=st.none() | st.floats(min_value=0, max_value=5000),
        remaining_reads=st.none() | st.integers(min_value=0, max_value=250),
        start_time=st.none() | st.text(max_size=40),
    ),
    st.builds(
        ReadFailure,
        kind=st.sampled_from(list(ReadFailureKind)),
        detail=st.text(max_size=40),
        retry_after=st.none() | st.floats(min_value=0, max_value=5000),
    ),
)
submissions = st.fixed_dictionaries(
    {"subscriptionId": st.just(SUB), "location": st.just("westus"), "operationId": st.just("op")},
    optional={
        "correlationId": st.from_regex(r"[\x21-\x7e]{1,20}", fullmatch=True),
        "timeout": st.integers(min_value=1, max_value=86400),
        "context": st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    first=valid_settings(),
    later=valid_settings(),
    body=submissions,
    answers=st.lists(observations, min_size=1, max_size=8),
    gaps=st.lists(st.floats(min_value=0, max_value=7200), min_size=8, max_size=8),
)
def test_every_poll_the_function_schedules_is_accepted_by_its_own_parser(
    first: Settings,
    later: Settings,
    body: dict[str, object],
    answers: list[object],
    gaps: list[float],
) -> None:
    now = [T0]
    outputs = RecordingOutputs()
    deps = build_dependencies(
        first,
        status_reader=ScriptedStatusReader(answers),  # type: ignore[arg-type]
        outputs=outputs,
        clock=lambda: now[0],
        sleep=lambda _: None,
    )
    timeout = body.get("timeout")
    if isinstance(timeout, int) and timeout > first.policy.max_timeout:
        body = {**body, "timeout": first.policy.max_timeout}
    message = intake_message(json.dumps(body).encode(), enqueued_time=T0)

    for gap in gaps:
        result = handle_watch_message(message, deps)
        assert result.action != "rejected", "the function rejected its own submission path"
        if result.action == "finished":
            return
        poll, due = outputs.scheduled[-1]
        for current in (first, later):
            parse_poll_message(poll.body, arm_endpoint=current.arm_endpoint, policy=current.policy)
        now[0] = due + timedelta(seconds=gap)
        message = poll_message(poll)
