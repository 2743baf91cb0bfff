"""The pipeline side's core: submitting a watch and following an operation to its end.

``follow_operation`` runs the function's ``decide`` on a fake clock, so these tests pin
that the CLI's ``watch`` waits, stops and judges exactly as the function does.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from ops_status.cli import output, watch
from ops_status.decision import FinalStatus, Reason
from ops_status.events import build_terminal_event
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.pipeline import (
    PollReport,
    follow_operation,
    initial_watch_message,
    prepare_watch,
    submit_watch,
)
from ops_status.request import submission_key
from ops_status.settings import Settings
from tests.contracts import assert_valid_event, assert_valid_watch_request
from tests.fakes import RecordingOutputs, ScriptedStatusReader

START = datetime(2025, 7, 1, 9, 0, tzinfo=timezone.utc)
SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


def parts(**extra: object) -> dict[str, object]:
    return {"subscriptionId": SUBSCRIPTION, "location": "westus", "operationId": "op-1", **extra}


def test_prepare_watch_validates_with_the_configured_policy(settings: Settings) -> None:
    from ops_status.errors import InvalidWatchRequestError

    with pytest.raises(InvalidWatchRequestError, match="timeout must not exceed"):
        prepare_watch(parts(timeout=settings.policy.max_timeout + 1), settings)


def test_submit_sends_the_validated_body_now_with_the_first_deterministic_id(
    settings: Settings,
) -> None:
    request = prepare_watch(parts(correlationId="run-1", context={"a": "1"}), settings)
    outputs = RecordingOutputs()

    message = submit_watch(request, outputs)

    [sent] = outputs.submitted  # unscheduled: receivable at once by the broker's clock
    assert outputs.scheduled == []
    assert sent is message
    assert message.message_id == submission_key(request)
    assert re.fullmatch("[0-9a-f]{32}", message.message_id)
    assert message.correlation_id == "run-1"
    assert message.application_properties == {"operationId": "op-1", "attempt": 0}
    body = assert_valid_watch_request(json.loads(message.body))
    assert "pollState" not in body
    assert body["context"] == {"a": "1"}


def test_the_same_watch_submitted_twice_gets_the_same_message_id(settings: Settings) -> None:
    first = initial_watch_message(prepare_watch(parts(correlationId="run-1"), settings))
    again = initial_watch_message(prepare_watch(parts(correlationId="run-1"), settings))
    rerun = initial_watch_message(prepare_watch(parts(correlationId="run-2"), settings))

    assert first.message_id == again.message_id != rerun.message_id


def test_follow_polls_until_the_operation_ends_waiting_as_the_function_would(
    settings: Settings,
) -> None:
    error = {"code": "QuotaExceeded", "message": "no"}
    reader = ScriptedStatusReader(
        [
            StatusRead("Running", percent_complete=10),
            ReadFailure(ReadFailureKind.THROTTLED, "HTTP 429", 429, retry_after=40),
            StatusRead("Running", percent_complete=80),
            StatusRead("Failed", error=error),
        ]
    )
    time = FakeTime()
    reports: list[PollReport] = []

    finish = follow_operation(
        prepare_watch(parts(correlationId="run-1"), settings),
        reader,
        settings,
        clock=time.clock,
        sleep=time.sleep,
        on_poll=reports.append,
    )

    assert finish.outcome.status is FinalStatus.FAILED
    assert finish.outcome.reason is Reason.OPERATION_FAILED
    assert finish.outcome.error == error
    assert [r.polls for r in reports] == [1, 2, 3, 4]
    assert len(reader.requests) == 4
    assert time.sleeps[1] >= 40  # Retry-After honoured
    assert all(s >= settings.policy.min_delay * (1 - settings.policy.jitter) for s in time.sleeps)
    assert reports[-1].elapsed == pytest.approx(sum(time.sleeps))
    event = build_terminal_event(finish, arm_endpoint=settings.arm_endpoint, now=time.now)
    assert assert_valid_event(event.body)["data"]["polls"] == 4


def test_follow_stops_at_the_deadline_with_timed_out(settings: Settings) -> None:
    time = FakeTime()

    finish = follow_operation(
        prepare_watch(parts(timeout=60), settings),
        ScriptedStatusReader([StatusRead("Creating")]),
        settings,
        clock=time.clock,
        sleep=time.sleep,
    )

    assert finish.outcome.status is FinalStatus.TIMED_OUT
    assert finish.outcome.arm_status == "Creating"
    assert time.now - START == timedelta(seconds=60)  # one last look exactly at the deadline


def test_follow_gives_up_on_a_status_that_stays_unreadable(settings: Settings) -> None:
    time = FakeTime()

    finish = follow_operation(
        prepare_watch(parts(), settings),
        ScriptedStatusReader([ReadFailure(ReadFailureKind.NOT_FOUND, "HTTP 404", 404)]),
        settings,
        clock=time.clock,
        sleep=time.sleep,
    )

    assert finish.outcome.status is FinalStatus.FAILED
    assert finish.outcome.reason is Reason.OPERATION_NOT_FOUND
    assert (time.now - START).total_seconds() >= settings.policy.not_found_grace


# -- the progress line ----------------------------------------------------------------


def reports_for(settings: Settings) -> list[PollReport]:
    reports: list[PollReport] = []
    time = FakeTime()
    follow_operation(
        prepare_watch(parts(), settings),
        ScriptedStatusReader(
            [
                StatusRead("Running", percent_complete=45),
                ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 503", 503),
                ReadFailure(ReadFailureKind.TRANSIENT, "HTTP 503", 503),
                StatusRead("Succeeded"),
            ]
        ),
        settings,
        clock=time.clock,
        sleep=time.sleep,
        on_poll=reports.append,
    )
    return reports


def test_progress_off_a_terminal_is_one_plain_line_per_read(settings: Settings) -> None:
    stream = io.StringIO()
    progress = watch.Progress(stream, live=False)

    for report in reports_for(settings):
        progress.update(report)
    progress.close()

    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 4
    assert "Running 45%" in lines[0]
    assert "polls=1" in lines[0]
    assert "next check in" in lines[0]
    assert "status not readable (HTTP 503), 2 in a row" in lines[2]
    assert lines[3].endswith("Succeeded  polls=4  done")


def test_progress_on_a_terminal_rewrites_one_line_in_place(settings: Settings) -> None:
    stream = io.StringIO()
    progress = watch.Progress(stream, live=True)

    for report in reports_for(settings):
        progress.update(report)
    progress.close()

    text = stream.getvalue()
    assert text.count("\r") == 4
    assert text.count("\n") == 1  # only when done
    assert text.endswith("\n")
    assert text.rstrip().endswith("Succeeded  polls=4  done")
    # A shorter line is padded so that it overwrites a longer one completely.
    widths = [len(drawn.rstrip("\n")) for drawn in text.split("\r")[1:]]
    assert widths == sorted(widths)
    assert len("Succeeded  polls=4  done") < widths[-1]


def test_progress_sleep_redraws_the_countdown_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(watch.time, "sleep", slept.append)
    clock = iter(float(n) / 2 for n in range(100))
    monkeypatch.setattr(watch.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()

    watch.Progress(stream, live=True).sleep(2.0)

    assert slept
    assert all(s <= 1.0 for s in slept)
    assert stream.getvalue().count("\r") == len(slept)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "0s"), (59.4, "59s"), (65, "1m05s"), (3600, "1h00m"), (7380, "2h03m"), (-3, "0s")],
)
def test_durations_read_like_a_clock(seconds: float, text: str) -> None:
    assert output.duration(seconds) == text
