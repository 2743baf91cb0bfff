"""Whole watches through the handler, against the ARM simulator and the identity endpoint.

ARM and identity are real HTTP peers here; Service Bus is the recording fake of our own
``Outputs`` port (the AMQP peer is exercised in tests/e2e). Time is a virtual clock that
jumps to each scheduled enqueue time, so long chains run in milliseconds.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from emulators.arm import Step
from ops_status.bootstrap import build_dependencies
from ops_status.credential import create_credential
from ops_status.handler import HandlingResult, handle_watch_message
from tests.conftest import sample
from tests.contracts import assert_valid_event
from tests.fakes import RecordingOutputs, intake_message, poll_message
from tests.integration.conftest import ArmStack


class VirtualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def run_watch(
    stack: ArmStack, body: dict[str, object], max_steps: int = 200, real_pause: float = 0.0
) -> tuple[list[HandlingResult], RecordingOutputs]:
    """Deliver the watch, then each scheduled follow-up at its time, until it finishes."""
    clock = VirtualClock()
    outputs = RecordingOutputs()
    deps = build_dependencies(
        stack.settings,
        credential=create_credential(stack.settings),
        outputs=outputs,
        clock=clock,
    )
    message = intake_message(json.dumps(body).encode(), enqueued_time=clock.now)
    results = []
    for _ in range(max_steps):
        result = handle_watch_message(message, deps)
        results.append(result)
        if result.action != "rescheduled":
            break
        poll, clock.now = outputs.scheduled[-1]
        message = poll_message(poll)
        time.sleep(real_pause)
    return results, outputs


def the_event(outputs: RecordingOutputs) -> dict[str, object]:
    [event] = outputs.events
    return assert_valid_event(event.body)


def test_running_then_succeeded_after_several_polls(stack: ArmStack) -> None:
    stack.arm.script("op-ok", [Step.running(repeat=4), Step.succeeded()])

    results, outputs = run_watch(stack, stack.parts("op-ok", correlationId="run-1"))

    event = the_event(outputs)
    assert event["type"] == "OpsStatus.Operation.Succeeded"
    assert event["data"]["polls"] == 5  # type: ignore[index]
    assert event["data"]["correlationId"] == "run-1"  # type: ignore[index]
    assert [r.action for r in results] == ["rescheduled"] * 4 + ["finished"]
    assert len(stack.arm.requests_for("op-ok")) == 5
    assert stack.identity.request_count() == 1


def test_running_then_failed_publishes_the_nested_error_intact(stack: ArmStack) -> None:
    arm_error = sample("arm-status-failed-nested.json")["error"]["error"]
    stack.arm.script("op-bad", [Step.running(repeat=2), Step.failed(error=arm_error)])

    _, outputs = run_watch(stack, stack.parts("op-bad"))

    event = the_event(outputs)
    assert event["type"] == "OpsStatus.Operation.Failed"
    assert event["data"]["error"] == arm_error  # type: ignore[index]
    assert outputs.events[0].application_properties["status"] == "Failed"


def test_throttled_watch_waits_retry_after_then_finishes(stack: ArmStack) -> None:
    stack.arm.script("op-429", [Step.throttled(retry_after="42"), Step.succeeded()])

    results, outputs = run_watch(stack, stack.parts("op-429"))

    first = results[0]
    assert first.action == "rescheduled"
    scheduled_at = outputs.scheduled[0][1]
    assert (scheduled_at - datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)).total_seconds() == 42
    assert the_event(outputs)["type"] == "OpsStatus.Operation.Succeeded"


def test_server_errors_and_garbled_answers_are_retried_then_succeed(stack: ArmStack) -> None:
    stack.arm.script(
        "op-5xx",
        [
            Step.server_error(503, repeat=2),
            Step.malformed(),
            Step.no_status(),
            Step.dropped(),
            Step.succeeded(),
        ],
    )

    _, outputs = run_watch(stack, stack.parts("op-5xx"))

    assert the_event(outputs)["type"] == "OpsStatus.Operation.Succeeded"
    assert len(stack.arm.requests_for("op-5xx")) == 6


def test_not_found_for_a_while_then_found(stack: ArmStack) -> None:
    stack.arm.script("op-404", [Step.not_found(repeat=3), Step.running(), Step.succeeded()])

    _, outputs = run_watch(stack, stack.parts("op-404"))

    assert the_event(outputs)["type"] == "OpsStatus.Operation.Succeeded"


def test_never_found_fails_with_a_distinct_reason_after_the_grace(stack: ArmStack) -> None:
    stack.arm.script("op-gone", [Step.not_found()])

    results, outputs = run_watch(stack, stack.parts("op-gone"))

    event = the_event(outputs)
    assert event["data"]["reason"] == "OperationNotFound"  # type: ignore[index]
    assert event["data"]["error"]["code"]  # type: ignore[index]
    assert len(results) > 3


def test_forbidden_until_the_grace_passes_fails_with_arms_error(stack: ArmStack) -> None:
    stack.arm.script("op-403", [Step.forbidden()])

    _, outputs = run_watch(stack, stack.parts("op-403"))

    event = the_event(outputs)
    assert event["data"]["reason"] == "StatusReadUnauthorized"  # type: ignore[index]
    assert event["data"]["error"]["code"] == "AuthorizationFailed"  # type: ignore[index]


def test_slow_answers_count_as_transient_failures(stack: ArmStack) -> None:
    stack.arm.script("op-slow", [Step.running().replace(delay=1.5), Step.succeeded()])

    _, outputs = run_watch(stack, stack.parts("op-slow"))

    assert the_event(outputs)["type"] == "OpsStatus.Operation.Succeeded"


def test_timeout_in_the_request_ends_a_never_ending_operation(stack: ArmStack) -> None:
    stack.arm.script("op-forever", [Step.running()])

    results, outputs = run_watch(stack, stack.parts("op-forever", timeout=120))

    event = the_event(outputs)
    assert event["type"] == "OpsStatus.Operation.TimedOut"
    assert event["data"]["armStatus"] == "Running"  # type: ignore[index]
    assert results[-1].polls == len(stack.arm.requests_for("op-forever"))


def test_invalid_request_never_reaches_arm(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.succeeded()])

    _, outputs = run_watch(stack, {"statusUrl": "https://evil.example/subscriptions/x"})

    assert the_event(outputs)["type"] == "OpsStatus.Watch.Rejected"
    assert stack.arm.requests == []
    assert stack.identity.request_count() == 0


@pytest.mark.slow
def test_identity_endpoint_down_for_longer_than_a_redelivery_loop_then_back(
    stack: ArmStack,
) -> None:
    # Given an identity endpoint down for 8 s of real time: longer than the 4.9 s in which
    # raising on a token failure spent all ten deliveries (msal replays a failure for 5 s)
    stack.identity.fail_for(8.0, status=503)
    stack.arm.script("op-ok", [Step.succeeded()])

    # When the watch runs (each step 0.25 s apart in real time, its delays in virtual time)
    results, outputs = run_watch(stack, stack.parts("op-ok"), real_pause=0.25)

    # Then it is rescheduled through the outage and ends with its real event
    assert the_event(outputs)["type"] == "OpsStatus.Operation.Succeeded"
    assert results[-1].action == "finished"
    assert len(results) > 2
    assert len(stack.arm.requests_for("op-ok")) == 1


def test_identity_endpoint_that_never_recovers_ends_the_watch_with_a_distinct_reason(
    stack: ArmStack,
) -> None:
    stack.identity.fail_next(100_000, status=503)
    stack.arm.script("op-ok", [Step.succeeded()])

    _, outputs = run_watch(stack, stack.parts("op-ok", timeout=86400), max_steps=400)

    event = the_event(outputs)
    assert event["type"] == "OpsStatus.Operation.Failed"
    assert event["data"]["reason"] == "TokenUnavailable"  # type: ignore[index]
    first = datetime.fromisoformat(str(event["data"]["firstSeen"]).replace("Z", "+00:00"))  # type: ignore[index]
    ended = datetime.fromisoformat(str(event["data"]["finishedAt"]).replace("Z", "+00:00"))  # type: ignore[index]
    assert (ended - first).total_seconds() >= stack.settings.policy.token_failure_grace
    assert stack.arm.requests_for("op-ok") == []
