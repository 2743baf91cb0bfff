"""Classifying ARM's answers: every HTTP outcome maps to one observation, none raises."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_status.observation import (
    OperationState,
    ReadFailure,
    ReadFailureKind,
    StatusRead,
    classify_response,
    normalize_arm_error,
    parse_retry_after,
    terminal_state,
)
from tests.conftest import sample, sample_bytes

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def classify(status: int, body: bytes | dict[str, object] = b"", **headers: str) -> object:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    lowered = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return classify_response(status, lowered, raw, now=NOW)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Succeeded", OperationState.SUCCEEDED),
        ("succeeded", OperationState.SUCCEEDED),
        ("Completed", OperationState.SUCCEEDED),
        ("Failed", OperationState.FAILED),
        ("FAILED", OperationState.FAILED),
        ("Canceled", OperationState.CANCELED),
        ("Cancelled", OperationState.CANCELED),
        ("Running", None),
        ("InProgress", None),
        ("Accepted", None),
        ("Deleting", None),
        ("SomethingNew", None),
    ],
)
def test_only_terminal_spellings_end_an_operation(status: str, expected: object) -> None:
    assert terminal_state(status) is expected


def test_official_example_is_a_succeeded_read_with_its_times() -> None:
    body = sample("arm-OperationsStatusGet.example.json")["responses"]["200"]["body"]

    read = classify(200, body)

    assert isinstance(read, StatusRead)
    assert read.state is OperationState.SUCCEEDED
    assert read.start_time == "2017-01-01T13:13:13.933Z"
    assert read.end_time == "2017-01-01T16:13:13.933Z"
    assert read.name == "testoperationid"


def test_running_read_keeps_percent_complete() -> None:
    read = classify(200, sample_bytes("arm-status-running.json"))

    assert isinstance(read, StatusRead)
    assert read.state is None
    assert read.percent_complete == 40


def test_nested_and_flat_error_shapes_both_unwrap_to_the_error_object_intact() -> None:
    nested = classify(200, sample_bytes("arm-status-failed-nested.json"))
    flat = classify(200, sample_bytes("arm-status-failed-flat.json"))

    assert isinstance(nested, StatusRead)
    assert isinstance(flat, StatusRead)
    assert nested.error == sample("arm-status-failed-nested.json")["error"]["error"]
    assert flat.error == sample("arm-status-failed-flat.json")["error"]
    assert nested.error is not None
    assert nested.error["details"][0]["additionalInfo"][0]["info"]["limit"] == 8


def test_error_that_is_not_an_object_is_wrapped_not_lost() -> None:
    assert normalize_arm_error("boom") == {"code": "Unknown", "message": "boom"}
    assert normalize_arm_error(None) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, ReadFailureKind.THROTTLED),
        (500, ReadFailureKind.TRANSIENT),
        (502, ReadFailureKind.TRANSIENT),
        (503, ReadFailureKind.TRANSIENT),
        (408, ReadFailureKind.TRANSIENT),
        (404, ReadFailureKind.NOT_FOUND),
        (401, ReadFailureKind.UNAUTHORIZED),
        (403, ReadFailureKind.UNAUTHORIZED),
        (400, ReadFailureKind.REJECTED),
        (409, ReadFailureKind.REJECTED),
        (302, ReadFailureKind.TRANSIENT),
        (204, ReadFailureKind.TRANSIENT),
    ],
)
def test_http_status_codes_map_to_failure_kinds(status: int, kind: ReadFailureKind) -> None:
    failure = classify(status, {"error": {"code": "X", "message": "m"}})

    assert isinstance(failure, ReadFailure)
    assert failure.kind is kind
    assert failure.http_status == status
    assert failure.error == {"code": "X", "message": "m"}


@pytest.mark.parametrize(
    "body", [b"<html>oops</html>", b"", b"[]", b'{"name": "x"}', b'{"status": ""}']
)
def test_200_without_a_usable_status_is_malformed(body: bytes) -> None:
    failure = classify(200, body)

    assert isinstance(failure, ReadFailure)
    assert failure.kind is ReadFailureKind.MALFORMED


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "Sat, 28 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"retry-after": "Sat, 28 Nov 2026 11:00:00 GMT"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "60"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


def test_throttled_answer_carries_retry_after_and_remaining_reads() -> None:
    failure = classify(429, b"", retry_after="17", x_ms_ratelimit_remaining_subscription_reads="0")

    assert isinstance(failure, ReadFailure)
    assert failure.retry_after == 17
    assert failure.remaining_reads == 0


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=100, max_value=599),
    st.dictionaries(
        st.sampled_from(
            [
                "retry-after",
                "retry-after-ms",
                "x-ms-retry-after-ms",
                "x-ms-ratelimit-remaining-subscription-reads",
            ]
        ),
        st.text(max_size=40),
    ),
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
            lambda c: (
                st.lists(c, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["status", "error", "percentComplete", "code", "details"]), c
                )
            ),
            max_leaves=15,
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_classification_is_total(status: int, headers: dict[str, str], body: bytes) -> None:
    result = classify_response(status, headers, body, now=NOW)

    assert isinstance(result, (StatusRead, ReadFailure))
    if isinstance(result, StatusRead):
        assert status == 200
    if result.retry_after is not None:
        assert result.retry_after >= 0
