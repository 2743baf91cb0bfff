"""Metrics after a scripted run: each count equals what the run did (real SDK, in-memory reader)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from ops_status.bootstrap import build_dependencies
from ops_status.errors import ServiceBusSendError
from ops_status.handler import Dependencies, HandlingResult, handle_watch_message
from ops_status.inbound import InboundMessage
from ops_status.metrics import pipeline_of
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.settings import Settings
from tests.conftest import sample
from tests.fakes import RecordingOutputs, ScriptedStatusReader, intake_message, poll_message
from tests.telemetry import Recorded, recorded_metrics

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)  # the fakes' ENQUEUED is T0 - 2 s
SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"


def run_watch(
    settings: Settings,
    recorded: Recorded,
    observations: list[object],
    body: dict[str, object],
    *,
    sequence_number: int,
    fail_sends: int = 0,
) -> list[HandlingResult]:
    """One watch from submission to its end, each follow-up fed back as its next message;
    a failed send is retried as the host would redeliver it (delivery count + 1)."""
    outputs = RecordingOutputs(fail_next=fail_sends)
    deps: Dependencies = replace(
        build_dependencies(
            settings,
            status_reader=ScriptedStatusReader(observations),  # type: ignore[arg-type]
            outputs=outputs,
            clock=lambda: T0,
            sleep=lambda _: None,
        ),
        metrics=recorded.metrics,
    )
    message: InboundMessage = intake_message(
        json.dumps(body).encode(), sequence_number=sequence_number
    )
    results = []
    for _ in range(20):
        try:
            result = handle_watch_message(message, deps)
        except ServiceBusSendError:
            message = replace(message, delivery_count=(message.delivery_count or 1) + 1)
            continue
        results.append(result)
        if result.action != "rescheduled":
            return results
        message = poll_message(outputs.scheduled[-1][0], sequence_number=sequence_number + 1)
    raise AssertionError("the watch never ended")


@pytest.fixture
def run(settings: Settings) -> Recorded:
    """The scripted run: three submissions, one of each kind of ending."""
    recorded = recorded_metrics()
    throttled = ReadFailure(
        ReadFailureKind.THROTTLED, "429", 429, retry_after=5.0, remaining_reads=0
    )
    no_token = ReadFailure(ReadFailureKind.TOKEN_UNAVAILABLE, "identity endpoint down")
    # A: running, throttled, no token, then succeeded (ARM's endTime 1.5 s before we publish);
    # its first follow-up's send fails once and the redelivery sends it
    run_watch(
        settings,
        recorded,
        [
            StatusRead("Creating", remaining_reads=120),
            throttled,
            no_token,
            StatusRead("Succeeded", end_time="2026-11-28T11:59:58.500Z"),
        ],
        sample("watch-parts.json"),  # context.pipeline: deploy-cache
        sequence_number=10,
        fail_sends=1,
    )
    # B: failed at the first read, no endTime given
    run_watch(
        settings,
        recorded,
        [StatusRead("Failed", error={"code": "QuotaExceeded", "message": "no"})],
        {**sample("watch-parts.json"), "operationId": "op-b", "context": {"pipeline": "nightly"}},
        sequence_number=20,
    )
    # C: an invalid request
    run_watch(settings, recorded, [], {"operationId": 5}, sequence_number=30)
    return recorded


def test_watches_started_and_finished_match_the_run(run: Recorded) -> None:
    assert run.total("ops_status.watch.started") == 3
    assert run.total("ops_status.watch.started", ops_status__pipeline="deploy-cache") == 1
    assert run.total("ops_status.watch.started", ops_status__pipeline="nightly") == 1
    assert run.total("ops_status.watch.finished") == 3
    assert (
        run.total(
            "ops_status.watch.finished",
            ops_status__outcome="Succeeded",
            ops_status__pipeline="deploy-cache",
        )
        == 1
    )
    assert (
        run.total(
            "ops_status.watch.finished",
            ops_status__outcome="Failed",
            ops_status__reason="OperationFailed",
        )
        == 1
    )
    assert (
        run.total(
            "ops_status.watch.finished",
            ops_status__outcome="Rejected",
            ops_status__reason="InvalidWatchRequest",
        )
        == 1
    )


def test_reads_duration_and_detection_lag_per_watch(run: Recorded) -> None:
    reads = {
        p.attributes["ops_status.outcome"]: (p.count, p.sum)
        for p in run.points("ops_status.watch.reads")
    }
    # A read four times, but its first delivery's send failed: the redelivery is attempt 1
    # again, so the watch took three attempts (the event's polls)
    assert reads == {"Succeeded": (1, 3), "Failed": (1, 1), "Rejected": (1, 0)}
    durations = {
        p.attributes["ops_status.outcome"]: p.sum for p in run.points("ops_status.watch.duration")
    }
    # From the broker's enqueued time (T0 - 2 s) to the event; a rejection has none
    assert durations == {"Succeeded": 2.0, "Failed": 2.0}
    [lag] = run.points("ops_status.watch.detection_lag")
    assert (lag.count, lag.sum) == (1, 1.5)
    assert lag.attributes == {
        "ops_status.outcome": "Succeeded",
        "ops_status.pipeline": "deploy-cache",
    }


def test_throttling_budget_and_token_failures_are_counted(run: Recorded) -> None:
    assert run.total("ops_status.arm.throttled") == 1
    assert run.total("ops_status.arm.throttled", ops_status__subscription_id=SUBSCRIPTION) == 1
    [budget] = run.points("ops_status.arm.remaining_reads")
    assert (budget.count, budget.min, budget.max) == (2, 0, 120)
    assert run.total("ops_status.token.failures") == 1


def test_send_failures_and_every_handled_message_are_counted(run: Recorded) -> None:
    assert run.total("ops_status.send.failures") == 1
    assert run.total("ops_status.send.failures", messaging__destination__name="polls") == 1
    # A: 3 steps + 1 failed delivery; B: 1 step; C: 1 rejection
    assert run.total("ops_status.handler.duration") == 6
    assert run.total("ops_status.handler.duration", ops_status__action="send_failed") == 1
    assert run.total("ops_status.handler.duration", ops_status__action="rescheduled") == 2
    assert run.total("ops_status.handler.duration", ops_status__action="finished") == 2
    assert run.total("ops_status.handler.duration", ops_status__action="rejected") == 1
    assert run.total("ops_status.handler.duration", messaging__destination__name="intake") == 4


def test_only_a_short_plain_pipeline_name_becomes_an_attribute() -> None:
    assert pipeline_of({"pipeline": "deploy-cache"}) == "deploy-cache"
    assert pipeline_of({"pipeline": "x" * 65}) is None
    assert pipeline_of({"pipeline": 4711}) is None
    assert pipeline_of({"pipeline": " padded"}) is None
    assert pipeline_of({"run": "4711"}) is None
    assert pipeline_of(None) is None
