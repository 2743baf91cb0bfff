"""Watch request parsing: what is accepted, how it is normalised, what is refused and why.

Long because the request contract has many fields, each with accepted and refused forms.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_status.errors import InvalidWatchRequestError
from ops_status.policy import PollPolicy
from ops_status.request import (
    MAX_BODY_BYTES,
    FailureStreak,
    PollState,
    WatchRequest,
    parse_poll_message,
    parse_watch_request,
    start_state,
)
from tests.conftest import sample, sample_bytes
from tests.contracts import assert_valid_poll_message

ARM = "https://management.azure.com"
SUB = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def parse(document: object, endpoint: str = ARM) -> object:
    return parse_watch_request(json.dumps(document).encode(), arm_endpoint=endpoint)


def errors_of(document: object, endpoint: str = ARM) -> list[str]:
    with pytest.raises(InvalidWatchRequestError) as caught:
        parse_watch_request(
            document if isinstance(document, bytes) else json.dumps(document).encode(),
            arm_endpoint=endpoint,
        )
    return caught.value.errors


def url(path_and_query: str, host: str = "management.azure.com") -> dict[str, str]:
    return {"statusUrl": f"https://{host}{path_and_query}"}


# -- accepted -----------------------------------------------------------------------


def test_parts_build_the_microsoft_cache_status_path_with_a_normalised_location() -> None:
    request = parse_watch_request(sample_bytes("watch-parts.json"), arm_endpoint=ARM)

    assert request.target.status_path == (
        f"/subscriptions/{SUB}/providers/Microsoft.Cache/locations/westus/"
        "operationsStatus/testoperationid?api-version=2025-07-01"
    )
    assert request.target.location == "westus"
    assert request.correlation_id == "pipeline-run-4711"
    assert request.context == {"pipeline": "deploy-cache", "stage": "prod", "run": 4711}
    assert request.timeout == 3600
    assert request.state is None


def test_api_version_defaults_to_2025_07_01_and_can_be_overridden() -> None:
    base = {"subscriptionId": SUB, "location": "westus", "operationId": "op"}

    assert parse(base).target.status_path.endswith("?api-version=2025-07-01")
    assert parse({**base, "apiVersion": "2024-09-01-preview"}).target.status_path.endswith(
        "?api-version=2024-09-01-preview"
    )


def test_status_url_is_kept_relative_to_the_endpoint_with_its_whole_query() -> None:
    request = parse_watch_request(sample_bytes("watch-status-url.json"), arm_endpoint=ARM)

    assert request.target.status_path.startswith(f"/subscriptions/{SUB}/providers/Microsoft.Cache")
    assert request.target.operation_id == "6c1e4d3e-9f0a-4b55-8c2d-1d2e3f4a5b6c*0AB1C2D3"
    assert request.target.location == "westus"
    assert request.target.provider == "Microsoft.Cache"


def test_status_url_of_any_provider_is_watched_the_same_way() -> None:
    request = parse(
        url(
            f"/subscriptions/{SUB}/providers/Microsoft.Storage/locations/eastus/asyncoperations/"
            "abc-123?api-version=2023-01-01&t=638&c=MIIH&s=sig&h=hash"
        )
    )

    assert request.target.provider == "Microsoft.Storage"
    assert request.target.operation_id == "abc-123"
    assert "t=638" in request.target.status_path
    assert "h=hash" in request.target.status_path


def test_status_url_on_explicit_default_port_matches_the_endpoint() -> None:
    request = parse(
        url(f"/subscriptions/{SUB}/x/op?api-version=2025-07-01", host="management.azure.com:443")
    )

    assert request.target.operation_id == "op"


def test_status_url_may_percent_encode_harmless_characters() -> None:
    request = parse(
        url(f"/subscriptions/{SUB}/providers/Microsoft.Cache/x/abc%2A12?api-version=2025-07-01")
    )

    assert request.target.operation_id == "abc*12"
    assert request.target.status_path.split("?")[0].endswith("/abc%2A12")


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    request = parse({**sample("watch-parts.json"), "futureField": {"anything": [1, 2]}})

    assert "futureField" not in request.to_body()


WATCH_ID = "0123456789abcdef0123456789abcdef"


def parse_poll(document: object, policy: PollPolicy | None = None) -> WatchRequest:
    return parse_poll_message(json.dumps(document).encode(), arm_endpoint=ARM, policy=policy)


def test_body_round_trips_with_poll_state() -> None:
    first = parse(sample("watch-parts.json"))
    state = PollState(
        first_seen=NOW,
        deadline=NOW + timedelta(hours=1),
        attempt=3,
        last_status="Running",
        consecutive_failures=2,
        streaks={
            "NotFound": FailureStreak(1, NOW + timedelta(minutes=5)),
            "Transient": FailureStreak(1, NOW + timedelta(minutes=6)),
        },
    )
    admitted = replace(first, watch_id=WATCH_ID, submission_id="sub-1").with_state(state)

    again = parse_poll(admitted.to_body())

    assert again.state == state
    assert again.target == first.target
    assert again.watch_id == WATCH_ID
    assert again.submission_id == "sub-1"
    assert again.context == first.context


def test_percent_complete_round_trips_in_the_poll_state_and_fits_the_schema() -> None:
    first = parse(sample("watch-parts.json"))
    state = PollState(
        first_seen=NOW,
        deadline=NOW + timedelta(hours=1),
        attempt=2,
        last_status="InProgress",
        percent_complete=37.5,
    )
    body = replace(first, watch_id=WATCH_ID).with_state(state).to_body()

    assert body["pollState"]["percentComplete"] == 37.5
    assert_valid_poll_message(body)
    again = parse_poll(body)
    assert again.state == state
    # a state written before percentComplete existed still parses, without progress
    del body["pollState"]["percentComplete"]
    older = parse_poll(body).state
    assert older is not None
    assert older.percent_complete is None


@pytest.mark.parametrize("value", [-1, 100.5, True, "40", [40]])
def test_a_poll_state_with_an_impossible_percent_complete_is_refused(value: object) -> None:
    document = {
        **sample("watch-parts.json"),
        "watchId": WATCH_ID,
        "pollState": {
            "attempt": 1,
            "firstSeen": "2026-11-28T12:00:00Z",
            "deadline": "2026-11-28T13:00:00Z",
            "percentComplete": value,
        },
    }

    with pytest.raises(InvalidWatchRequestError) as caught:
        parse_poll_message(json.dumps(document), arm_endpoint=ARM)

    assert any("pollState" in e for e in caught.value.errors)


@pytest.mark.parametrize("name", ["pollState", "watchId", "submissionId"])
def test_a_submission_must_not_carry_what_only_ops_status_writes(name: str) -> None:
    document = {**sample("watch-parts.json"), name: {"attempt": 0} if name == "pollState" else "x"}

    assert any(f"{name} is written only by ops-status" in e for e in errors_of(document))


def test_a_poll_message_needs_its_watch_id_and_state() -> None:
    with pytest.raises(InvalidWatchRequestError) as caught:
        parse_poll(sample("watch-parts.json"))

    assert any("watchId" in e for e in caught.value.errors)
    assert any("pollState is missing" in e for e in caught.value.errors)


def test_a_poll_deadline_beyond_the_maximum_timeout_is_clamped_not_refused() -> None:
    document = {
        **sample("watch-parts.json"),
        "watchId": WATCH_ID,
        "pollState": {
            "attempt": 1,
            "firstSeen": "2026-11-28T12:00:00Z",
            "deadline": "2027-11-28T12:00:00Z",
        },
    }

    request = parse_poll(document, PollPolicy(max_timeout=3600, default_timeout=3600))

    assert request.state is not None
    assert request.state.deadline == NOW + timedelta(hours=1)


def test_a_poll_keeps_any_status_text_arm_sent() -> None:
    # ARM's status is a free string; the product wrote it, so its own parser accepts it.
    document = {
        **sample("watch-parts.json"),
        "watchId": WATCH_ID,
        "pollState": {
            "attempt": 1,
            "firstSeen": "2026-11-28T12:00:00Z",
            "deadline": "2026-11-28T13:00:00Z",
            "lastStatus": "Läuft\tnoch",
        },
    }

    request = parse_poll(document)

    assert request.state is not None
    assert request.state.last_status == "Läuft\tnoch"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subscriptionId", SUB + "\n"),
        ("location", "westus\n"),
        ("operationId", "op\n"),
        ("apiVersion", "2025-07-01\n"),
        ("correlationId", "run-1\n"),
        ("apiVersion", "\u0662\u0660\u0662\u0665-07-01"),  # Arabic-Indic digits
        ("apiVersion", "\uff12\uff10\uff12\uff15-07-01"),  # fullwidth digits
        ("deadline", "2026-11-28T12:00:00Z\n"),
        ("deadline", " 2026-11-28T12:00:00Z"),
        ("deadline", "0001-01-01T00:00:00+14:00"),
        ("deadline", "9999-12-31T23:59:59-14:00"),
    ],
)
def test_trailing_newlines_unicode_digits_and_unrepresentable_times_are_refused(
    field: str, value: str
) -> None:
    document = {"subscriptionId": SUB, "location": "westus", "operationId": "op", field: value}

    assert errors_of(document)


@pytest.mark.parametrize("segment", ["op\n", "op%0A"])
def test_a_status_url_path_with_a_newline_is_refused(segment: str) -> None:
    assert errors_of(url(f"/subscriptions/{SUB}/x/{segment}?api-version=2025-07-01"))


def test_a_status_url_on_port_zero_is_not_taken_for_the_default_port() -> None:
    errors = errors_of(
        url(f"/subscriptions/{SUB}/x/op?api-version=2025-07-01", host="management.azure.com:0")
    )

    assert any("configured ARM endpoint" in e for e in errors)


@pytest.mark.parametrize("depth", [33, 333, 500, 990, 2000, 10_000])
def test_deep_nesting_is_a_clear_rejection_at_any_depth(depth: int) -> None:
    body = b'{"context":' + b"[" * depth + b"]" * depth + b"}"

    errors = errors_of(body)

    assert any("nested" in e for e in errors)


def test_watch_key_depends_on_operation_and_correlation_id_only() -> None:
    base = sample("watch-parts.json")

    assert parse(base).watch_key == parse({**base, "timeout": 60}).watch_key
    assert parse(base).watch_key == parse({**base, "location": "westus"}).watch_key
    assert parse(base).watch_key != parse({**base, "correlationId": "other"}).watch_key
    assert parse(base).watch_key != parse({**base, "operationId": "other"}).watch_key


def test_start_state_uses_the_earlier_of_timeout_and_deadline() -> None:
    policy = PollPolicy(default_timeout=7200)
    base = {"subscriptionId": SUB, "location": "westus", "operationId": "op"}

    assert start_state(parse(base), NOW, policy).deadline == NOW + timedelta(seconds=7200)
    assert start_state(parse({**base, "timeout": 60}), NOW, policy).deadline == NOW + timedelta(
        seconds=60
    )
    soon = (NOW + timedelta(seconds=30)).isoformat()
    assert start_state(parse({**base, "timeout": 60, "deadline": soon}), NOW, policy).deadline == (
        NOW + timedelta(seconds=30)
    )


# -- refused ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"statusUrl": "a", "statusUrl": "b"}', "duplicate key"),
        (b'{"timeout": NaN}', "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b"{}", "missing target"),
        (b" " * (MAX_BODY_BYTES + 1), "limit is"),
    ],
)
def test_malformed_bodies_are_refused_with_a_clear_reason(body: bytes, expected: str) -> None:
    assert any(expected in e for e in errors_of(body))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("subscriptionId", "not-a-guid", "subscriptionId must be a GUID"),
        ("location", "west/us", "location must be an Azure region"),
        ("location", "   ", "location must be an Azure region"),
        ("operationId", "../../other", "operationId must be"),
        ("operationId", "a?b=c", "operationId must be"),
        ("operationId", "a#b", "operationId must be"),
        ("operationId", "a%2Fb", "operationId must be"),
        ("operationId", "..", "operationId must be"),
        ("operationId", "x" * 257, "operationId must be"),
        ("apiVersion", "latest", "apiVersion must have the ARM date form"),
        ("correlationId", "x" * 129, "correlationId must be"),
        ("correlationId", "line\nbreak", "correlationId must be"),
        ("timeout", -5, "positive number"),
        ("timeout", True, "timeout must be a number"),
        ("timeout", 10**7, "must not exceed"),
        ("deadline", "2026-11-28T12:00:00", "deadline must be"),
        ("context", [1, 2], "context must be a JSON object"),
        ("context", {"blob": "x" * 5000}, "limit is 4096"),
        ("pollState", {"attempt": -1}, "pollState"),
    ],
)
def test_each_invalid_field_is_named_in_the_errors(
    field: str, value: object, expected: str
) -> None:
    document = {"subscriptionId": SUB, "location": "westus", "operationId": "op", field: value}

    assert any(expected in e for e in errors_of(document))


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of({"subscriptionId": "x", "location": "?", "operationId": "/", "timeout": -1})

    assert len(errors) == 4


def test_parts_and_status_url_together_are_ambiguous() -> None:
    document = {**sample("watch-parts.json"), **sample("watch-status-url.json")}

    assert any("not both" in e for e in errors_of(document))


@pytest.mark.parametrize(
    "status_url",
    [
        f"http://management.azure.com/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        f"https://evil.example.com/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        f"https://management.azure.com.evil.example/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        f"https://management.azure.com@evil.example/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        f"https://user:pw@management.azure.com/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        f"https://management.azure.com:8443/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x/op?api-version=2025-07-01#frag",
        f"https://management.azure.com/subscriptions/{SUB}/../../x/op?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x/%2e%2e/op?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x%2Fop?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x%5Cop?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x%252Fop?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x%0d%0aop?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x%zzop?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x\\op?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}//op?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/op\r\nHost: x?api-version=2025-07-01",
        f"https://management.azure.com/subscriptions/{SUB}/x/op",
        f"https://management.azure.com/subscriptions/{SUB}/x/op?api-version=2025-07-01&api-version=1",
        "https://management.azure.com/subscriptions/not-a-guid/x/op?api-version=2025-07-01",
        "https://management.azure.com/resourceGroups/x/op?api-version=2025-07-01",
        "//management.azure.com/subscriptions/{SUB}/x/op?api-version=2025-07-01",
        "https://mаnagement.azure.com/subscriptions/{SUB}/x/op?api-version=2025-07-01",  # noqa: RUF001
        "",
    ],
)
def test_status_urls_that_could_leave_the_arm_endpoint_are_refused(status_url: str) -> None:
    assert errors_of({"statusUrl": status_url})


def test_plain_http_status_url_is_accepted_only_for_a_plain_http_loopback_endpoint() -> None:
    endpoint = "http://127.0.0.1:8081"
    request = parse(
        {"statusUrl": f"http://127.0.0.1:8081/subscriptions/{SUB}/x/op?api-version=2025-07-01"},
        endpoint=endpoint,
    )

    assert request.target.operation_id == "op"
    assert errors_of(
        {"statusUrl": f"http://127.0.0.1:9999/subscriptions/{SUB}/x/op?api-version=2025-07-01"},
        endpoint=endpoint,
    )


# -- properties ---------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=20,
)
_field_values = st.one_of(
    _json,
    st.sampled_from([SUB, "westus", "West US", "op-1", "2025-07-01", "../x", "@evil", "%2e"]),
    st.text(max_size=300),
)
_status_urls = st.builds(
    lambda scheme, host, path, query: f"{scheme}{host}{path}{query}",
    st.sampled_from(["https://", "http://", "//", "https:///", "HTTPS://"]),
    st.sampled_from(
        [
            "management.azure.com",
            "management.azure.com:443",
            "management.azure.com:444",
            "evil.com",
            "management.azure.com@evil.com",
            "evil.com#@management.azure.com",
            "management.azure.com.",
            "xn--mnagement-azure-com",
            "[::1]",
        ]
    ),
    st.lists(
        st.sampled_from(
            ["subscriptions", SUB, "..", ".", "%2e", "%2f", "", "a\\b", "op", "@", "x:y", " "]
        ),
        max_size=6,
    ).map(lambda parts: "/" + "/".join(parts)),
    st.sampled_from(["", "?api-version=2025-07-01", "?api-version=2025-07-01#x", "?a=b&c"]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "subscriptionId",
                "location",
                "operationId",
                "apiVersion",
                "statusUrl",
                "correlationId",
                "timeout",
                "deadline",
                "context",
                "pollState",
            ]
        ),
        _field_values,
    ),
    _status_urls,
)
def test_any_body_is_either_refused_or_targets_only_the_arm_host(
    document: dict[str, object], status_url: str
) -> None:
    if "statusUrl" in document:
        document["statusUrl"] = status_url
    try:
        request = parse(document)
    except InvalidWatchRequestError:
        return
    final = urlsplit(ARM + request.target.status_path)
    assert final.scheme == "https"
    assert final.netloc == "management.azure.com"
    assert final.path.startswith("/subscriptions/")
    assert "/../" not in final.path
    assert "/./" not in final.path
    assert "\\" not in request.target.status_path


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise_anything_but_the_rejection_type(body: bytes) -> None:
    with contextlib.suppress(InvalidWatchRequestError):
        parse_watch_request(body, arm_endpoint=ARM)


@pytest.mark.parametrize(
    "deadline",
    [
        "2026-11-28 12:00:00Z",
        "20261128T120000Z",
        "2026-W48-6T12:00:00Z",
        "2026-11-28T12Z",
        "2026-11-28T12:00:00,5Z",
        "2026-11-28T12:00:00+1400",
        "2026-11-28T12:00:00Z\x00",
    ],
)
def test_only_rfc_3339_timestamps_are_accepted(deadline: str) -> None:
    document = {"subscriptionId": SUB, "location": "westus", "operationId": "op"}

    assert any("deadline must be" in e for e in errors_of({**document, "deadline": deadline}))


@pytest.mark.parametrize("timeout", [" 3600", "3600\n", "1e3", "1_000", "\u0663\u0666\u0660\u0660"])
def test_a_timeout_string_must_be_plain_decimal(timeout: str) -> None:
    document = {"subscriptionId": SUB, "location": "westus", "operationId": "op"}

    assert any("timeout must be" in e for e in errors_of({**document, "timeout": timeout}))


def test_arm_times_with_seven_fraction_digits_still_parse() -> None:
    document = {"subscriptionId": SUB, "location": "westus", "operationId": "op"}

    request = parse({**document, "deadline": "2026-11-28T12:00:00.1234567Z"})

    assert request.deadline is not None
