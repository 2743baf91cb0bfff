"""Hostile ARM answers over real HTTP: each one ends in a classified outcome and, through
``decide`` and the event builders, in a valid message under the Service Bus size limit.
Never a hang, never an exception. (The basic cases, e.g. a body past the size cap and a
slow drip, are in test_arm_client.py; these extend them.)
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

import pytest

from emulators.arm import Step
from ops_status.arm import MAX_RESPONSE_BYTES
from ops_status.decision import Finish, decide
from ops_status.events import build_terminal_event, build_watch_message
from ops_status.observation import Observation, ReadFailure, ReadFailureKind, StatusRead
from ops_status.request import WatchRequest, parse_poll_message, parse_watch_request
from tests.contracts import assert_valid_event
from tests.integration.conftest import ArmStack

SERVICE_BUS_LIMIT = 256 * 1024


def request(stack: ArmStack, operation_id: str) -> WatchRequest:
    body = json.dumps(stack.parts(operation_id)).encode()
    submitted = parse_watch_request(body, arm_endpoint=stack.settings.arm_endpoint)
    return submitted.admitted(
        "0123456789abcdef0123456789abcdef",
        submission_id="s-1",
        first_seen=datetime.now(timezone.utc),
        policy=stack.settings.policy,
    )


def read_and_settle(stack: ArmStack, step: Step, **client: float) -> tuple[Observation, bytes]:
    """One read through ArmClient, then decide and build what the handler would send."""
    stack.arm.script("op-h", [step])
    watch = request(stack, "op-h")
    started = time.monotonic()
    observation = stack.client(**client).get_operation_status(watch)
    assert time.monotonic() - started < 10, "a hostile answer must not hang the read"
    now = datetime.now(timezone.utc)
    action = decide(watch, observation, now, stack.settings.policy)
    if isinstance(action, Finish):
        message = build_terminal_event(action, arm_endpoint=stack.settings.arm_endpoint, now=now)
        # jsonschema recurses several frames per level of the (legitimately deep) error.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))
        try:
            assert_valid_event(message.body)
        finally:
            sys.setrecursionlimit(limit)
    else:
        message = build_watch_message(action)
        # Whatever ARM answered, the product's own follow-up is accepted by its own parser.
        parse_poll_message(message.body, arm_endpoint=stack.settings.arm_endpoint)
    assert len(message.body) < SERVICE_BUS_LIMIT
    message.body.decode("utf-8")
    return observation, message.body


def nested_error(levels: int) -> bytes:
    """``{"status": "Failed", "error": {"error": {code, details: [{code, details: [...]}]}}}``
    with ``levels`` nested details: JSON depth about 2 * levels."""
    head = b'{"code":"Nested","message":"level","details":['
    return (
        b'{"status":"Failed","error":{"error":'
        + head * levels
        + b'{"code":"Leaf","message":"bottom"}'
        + b"]}" * levels
        + b"}}"
    )


def test_error_details_nested_5000_deep_still_classify_into_a_valid_event(
    stack: ArmStack,
) -> None:
    observation, _ = read_and_settle(stack, Step.raw(200, nested_error(5000)))

    # json cannot parse it: a garbled answer, retried like any other.
    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.MALFORMED


@pytest.mark.parametrize("levels", [450, 480, 490, 494, 496])
def test_error_details_as_deep_as_json_can_parse_never_break_event_building(
    stack: ArmStack, levels: int
) -> None:
    # Regression: at ~990 levels of JSON, loads succeeded but the event's dumps (three
    # levels deeper) raised RecursionError on every redelivery: dead-lettered, no event.
    observation, body = read_and_settle(stack, Step.raw(200, nested_error(levels)))

    if isinstance(observation, StatusRead):
        assert observation.status == "Failed"
        event = json.loads(body)
        assert event["type"] == "OpsStatus.Operation.Failed"
        assert event["data"]["error"]["code"] == "Nested"
    else:
        assert observation.kind is ReadFailureKind.MALFORMED


def test_error_deep_on_a_500_is_still_a_transient_failure(stack: ArmStack) -> None:
    body = b'{"error":' + b'{"details":[' * 5000 + b"]}" * 5000 + b"}"
    observation, _ = read_and_settle(stack, Step.raw(500, body))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TRANSIENT


def test_gigantic_error_payload_under_the_read_cap_is_shrunk_to_fit_the_event(
    stack: ArmStack,
) -> None:
    details = [{"code": f"D{i}", "message": "m" * 2000} for i in range(400)]
    body = json.dumps(
        {"status": "Failed", "error": {"code": "Big", "message": "x" * 100_000, "details": details}}
    ).encode()
    assert len(body) < MAX_RESPONSE_BYTES

    observation, event_body = read_and_settle(stack, Step.raw(200, body))

    assert isinstance(observation, StatusRead)
    event = json.loads(event_body)
    assert event["data"]["error"]["code"] == "Big"
    assert event["data"]["errorTruncated"]


def test_gigantic_error_answer_past_the_cap_is_not_read(stack: ArmStack) -> None:
    body = b'{"error": {"code": "X", "message": "' + b"y" * (MAX_RESPONSE_BYTES + 1) + b'"}}'
    observation, _ = read_and_settle(stack, Step.raw(503, body))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html", b'{"status": "Succeeded"}', "Succeeded"),
        ("", b'{"status": "Running"}', "Running"),
        ("application/octet-stream", b'{"status": "Canceled"}', "Canceled"),
        ("application/json; charset=latin-1", b'{"status": "Succeeded"}', "Succeeded"),
        ("text/html", b"<html><body>Service Unavailable</body></html>", None),
        ("application/json", b"", None),
        ("application/json", b"\xff\xfe\x00garbage", None),
        ("application/json", b"[1, 2, 3]", None),
        ("application/json", b'"Succeeded"', None),
        ("application/json", b'{"status": null}', None),
        ("application/json", b'{"status": 12}', None),
        ("application/json", b'{"status": "   "}', None),
        ("application/json", b'{"status": "Succeeded"', None),
        ("application/json", b'{"status": NaN}', None),
        ("application/json", b'{"status": "Succeeded", "status": "Failed"}', "Failed"),
        ("application/json", b'{"status": "' + b"R" * 100_000 + b'"}', "R" * 64),
        ("application/json", b'{"status": "Failed", "error": "' + b"e" * 10_000 + b'"}', "Failed"),
        ("application/json", b'{"status": "Failed", "error": [1, {"a": []}]}', "Failed"),
        ("application/json", b'{"status": "Succeeded", "percentComplete": 1e999}', "Succeeded"),
        ("application/json", b'{"status": "Succeeded", "startTime": {"x": 1}}', "Succeeded"),
    ],
)
def test_wrong_content_types_and_non_json_bodies_are_classified(
    stack: ArmStack, content_type: str, body: bytes, expected: str | None
) -> None:
    observation, _ = read_and_settle(
        stack, Step.raw(200, body, headers={"Content-Type": content_type})
    )

    if expected is None:
        assert isinstance(observation, ReadFailure)
        assert observation.kind is ReadFailureKind.MALFORMED
    else:
        assert isinstance(observation, StatusRead)
        assert observation.status == expected


@pytest.mark.parametrize(
    "retry_after",
    ["1e308", "-5", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "1" * 100],
)
def test_hostile_retry_after_values_are_bounded(stack: ArmStack, retry_after: str) -> None:
    stack.arm.script("op-h", [Step.throttled(retry_after=retry_after)])
    watch = request(stack, "op-h")
    observation = stack.client().get_operation_status(watch)
    now = datetime.now(timezone.utc)

    action = decide(watch, observation, now, stack.settings.policy)

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.THROTTLED
    assert not isinstance(action, Finish)
    assert 0 < action.delay <= stack.settings.policy.retry_after_max * 1.5


@pytest.mark.parametrize(
    "step",
    [
        Step.throttled().replace(drip=0.3),
        Step.server_error(503).replace(drip=0.3),
        Step.failed().replace(drip=0.3),
        Step.succeeded().replace(delay=5),
        Step.server_error(500).replace(delay=5),
    ],
    ids=["drip-429", "drip-503", "drip-failed", "slow-200", "slow-500"],
)
def test_slow_answers_of_every_kind_end_in_a_bounded_transient_failure(
    stack: ArmStack, step: Step
) -> None:
    started = time.monotonic()
    observation, _ = read_and_settle(stack, step, connect_timeout=0.5, read_timeout=0.5)

    assert time.monotonic() - started < 4
    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TRANSIENT


def test_connection_reset_mid_answer_is_transient(stack: ArmStack) -> None:
    observation, _ = read_and_settle(stack, Step.running().replace(drop_connection=True))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TRANSIENT
