"""Outbound messages: CloudEvents that match the published schema, ids that dedupe, size caps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ops_status.decision import Finish, Reschedule, decide
from ops_status.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    MAX_EVENT_BODY_BYTES,
    TRUNCATION_MARKER,
    build_rejection_event,
    build_terminal_event,
    build_watch_message,
)
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.policy import PollPolicy
from ops_status.request import parse_watch_request
from tests.conftest import sample, sample_bytes
from tests.contracts import (
    assert_valid_event,
    assert_valid_poll_message,
    assert_valid_watch_request,
)

ARM = "https://management.azure.com"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
POLICY = PollPolicy()


KEY = "0123456789abcdef0123456789abcdef"


def request():  # type: ignore[no-untyped-def]
    submitted = parse_watch_request(sample_bytes("watch-parts.json"), arm_endpoint=ARM)
    return submitted.admitted(KEY, submission_id="sub-1", first_seen=T0, policy=POLICY)


def finish(observation: object) -> Finish:
    action = decide(request(), observation, T0, POLICY)  # type: ignore[arg-type]
    assert isinstance(action, Finish)
    return action


def test_failed_event_is_a_structured_cloudevent_carrying_the_nested_arm_error() -> None:
    arm_error = sample("arm-status-failed-nested.json")["error"]["error"]
    message = build_terminal_event(
        finish(StatusRead("Failed", error=arm_error, name="testoperationid")),
        arm_endpoint=ARM,
        now=T0,
    )

    event = assert_valid_event(message.body)
    assert message.content_type == CLOUDEVENTS_CONTENT_TYPE
    assert event["specversion"] == "1.0"
    assert event["type"] == "OpsStatus.Operation.Failed"
    assert event["id"] == message.message_id
    assert event["data"]["error"] == arm_error
    assert event["data"]["status"] == "Failed"
    assert event["data"]["reason"] == "OperationFailed"
    assert event["data"]["polls"] == 1
    assert event["data"]["correlationId"] == "pipeline-run-4711"
    assert event["data"]["context"] == {"pipeline": "deploy-cache", "stage": "prod", "run": 4711}
    assert event["data"]["statusUrl"].startswith(ARM + "/subscriptions/")
    assert message.correlation_id == "pipeline-run-4711"
    assert message.application_properties == {
        "eventType": "OpsStatus.Operation.Failed",
        "status": "Failed",
        "reason": "OperationFailed",
        "subscriptionId": "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f",
        "location": "westus",
        "operationId": "testoperationid",
        "correlationId": "pipeline-run-4711",
        "polls": 1,
        "watchId": request().watch_key,
        "submissionId": "sub-1",
    }


@pytest.mark.parametrize(
    ("observation", "event_type"),
    [
        (StatusRead("Succeeded"), "OpsStatus.Operation.Succeeded"),
        (StatusRead("Canceled"), "OpsStatus.Operation.Canceled"),
        (
            ReadFailure(ReadFailureKind.REJECTED, "HTTP 400", 400, {"code": "Bad"}),
            "OpsStatus.Operation.Failed",
        ),
    ],
)
def test_every_terminal_outcome_matches_the_schema(observation: object, event_type: str) -> None:
    message = build_terminal_event(finish(observation), arm_endpoint=ARM, now=T0)

    assert assert_valid_event(message.body)["type"] == event_type


def test_timed_out_event_matches_the_schema_and_names_the_last_status() -> None:
    first = decide(request(), StatusRead("Provisioning"), T0, POLICY)
    assert isinstance(first, Reschedule)
    late = decide(first.next_request, StatusRead("Running"), T0 + timedelta(days=2), POLICY)
    assert isinstance(late, Finish)

    event = assert_valid_event(build_terminal_event(late, arm_endpoint=ARM, now=T0).body)

    assert event["type"] == "OpsStatus.Operation.TimedOut"
    assert event["data"]["armStatus"] == "Running"


def test_terminal_event_id_is_the_same_whatever_the_outcome() -> None:
    succeeded = build_terminal_event(finish(StatusRead("Succeeded")), arm_endpoint=ARM, now=T0)
    failed = build_terminal_event(finish(StatusRead("Failed")), arm_endpoint=ARM, now=T0)

    # One terminal event per watch: a redelivered last step that sees another outcome
    # is still dropped by duplicate detection.
    assert succeeded.message_id == failed.message_id == f"{request().watch_key}.final"


def test_next_watch_message_has_a_deterministic_id_per_attempt_and_a_valid_body() -> None:
    action = decide(request(), StatusRead("Running"), T0, POLICY)
    assert isinstance(action, Reschedule)

    message = build_watch_message(action)
    again = build_watch_message(decide(request(), StatusRead("Running"), T0, POLICY))  # type: ignore[arg-type]

    assert message.message_id == f"{request().watch_key}.1"
    assert message.message_id == again.message_id
    body = assert_valid_poll_message(message.body)
    assert body["pollState"]["attempt"] == 1
    assert body["correlationId"] == "pipeline-run-4711"


def test_huge_arm_error_is_truncated_with_a_marker_to_fit_service_bus() -> None:
    huge = {
        "code": "Huge",
        "message": "m" * 300_000,
        "details": [{"code": f"D{i}", "message": "x" * 5000} for i in range(200)],
    }

    message = build_terminal_event(
        finish(StatusRead("Failed", error=huge)), arm_endpoint=ARM, now=T0
    )

    assert len(message.body) <= MAX_EVENT_BODY_BYTES
    event = assert_valid_event(message.body)
    assert event["data"]["errorTruncated"] == TRUNCATION_MARKER
    assert event["data"]["error"]["code"] == "Huge"
    assert event["data"]["error"]["message"].endswith("[truncated]")


def test_small_error_is_never_marked_truncated() -> None:
    message = build_terminal_event(
        finish(StatusRead("Failed", error={"code": "C", "message": "m"})), arm_endpoint=ARM, now=T0
    )

    assert "errorTruncated" not in json.loads(message.body)["data"]


def test_rejection_event_carries_errors_raw_body_and_recovered_correlation_id() -> None:
    raw = json.dumps({"operationId": "../x", "correlationId": "run-9"}).encode()

    message = build_rejection_event(
        raw, ["operationId must be ..."], key=KEY, now=T0, delivery_id="m-1", submission_id="m-1"
    )

    event = assert_valid_event(message.body)
    assert event["type"] == "OpsStatus.Watch.Rejected"
    assert event["data"]["errors"] == ["operationId must be ..."]
    assert event["data"]["rawBody"] == raw.decode()
    assert event["data"]["correlationId"] == "run-9"
    assert message.correlation_id == "run-9"
    assert message.application_properties["status"] == "Rejected"
    assert message.message_id == f"{KEY}.final"
    assert message.application_properties["submissionId"] == "m-1"


def test_rejection_event_recovers_the_operation_id_from_parts_or_a_status_url() -> None:
    sub = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
    from_url = json.dumps(
        {"statusUrl": f"https://evil.example/subscriptions/{sub}/x/op-7?api-version=1", "c": 1}
    ).encode()
    hostile = json.dumps({"operationId": "op\nx", "correlationId": " padded"}).encode()

    by_url = build_rejection_event(from_url, ["x"], key=KEY, now=T0)
    by_hostile = build_rejection_event(hostile, ["x"], key=KEY, now=T0)

    assert by_url.application_properties["operationId"] == "op-7"
    assert by_url.application_properties["subscriptionId"] == sub
    assert assert_valid_event(by_url.body)["data"]["operationId"] == "op-7"
    assert "operationId" not in by_hostile.application_properties
    assert "correlationId" not in by_hostile.application_properties


def test_rejection_of_a_huge_binary_body_is_capped() -> None:
    raw = b"\xff" * 1_000_000

    message = build_rejection_event(raw, ["body is not UTF-8"], key=KEY, now=T0)

    event = assert_valid_event(message.body)
    assert event["data"]["rawBodyTruncated"] is True
    assert event["data"]["rawBodyBytes"] == 1_000_000
    assert len(message.body) <= MAX_EVENT_BODY_BYTES


def test_sample_watch_requests_match_the_published_schema() -> None:
    assert_valid_watch_request(sample("watch-parts.json"))
    assert_valid_watch_request(sample("watch-status-url.json"))
