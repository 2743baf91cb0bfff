"""Hostile watch requests and ARM answers: nothing escapes but the rejection type, and no
accepted input can send a request (and its bearer token) to any host but the ARM endpoint.

Extends the property tests in test_request.py / test_observation.py with the classic
URL-confusion tricks (user-info, encoded slashes and dots, backslashes, look-alike and
IDN hosts, ports, ``//`` prefixes, CR/LF, NUL) and the JSON ones (deep nesting,
non-UTF-8, duplicate keys, huge numbers, lone surrogates), down to the full handler.

The input classes the fuzz run (benchmarks/fuzz.py) counts have strategies here too, run
through the whole handler on both queues: nesting depth 1-2,000, timestamp extremes with
offsets (in ``deadline`` and in a poll message's ``pollState``), whitespace around every
string field, and non-ASCII Unicode digits.

Long on purpose: one catalogue of attacks, kept together so a reviewer can see every
trick that was tried against the one trust boundary.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ops_status.arm import ArmClient
from ops_status.bootstrap import build_dependencies
from ops_status.errors import InvalidWatchRequestError
from ops_status.handler import HandlingResult, handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.observation import (
    Observation,
    ReadFailure,
    ReadFailureKind,
    StatusRead,
    classify_response,
)
from ops_status.request import MAX_JSON_DEPTH, WatchRequest, parse_poll_message, parse_watch_request
from ops_status.settings import Settings
from tests.contracts import assert_valid_event, assert_valid_poll_message
from tests.fakes import RecordingOutputs, ScriptedStatusReader, intake_message

ARM = "https://management.azure.com"
SUB = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
GOOD_PATH = f"/subscriptions/{SUB}/providers/Microsoft.Cache/locations/westus/operationsStatus/op-1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
TOKEN = "sim-0123456789abcdef"

HOSTILE_STATUS_URLS = [
    f"https://user@management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://user:pw@management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com@evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com%40evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com%2F@evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https://evil.example#@management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://evil.example?@management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com\\@evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com\\evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https:\\\\management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com.evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com.{GOOD_PATH}?api-version=2025-07-01",
    f"https://evilmanagement.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://manag\u0435ment.azure.com{GOOD_PATH}?api-version=2025-07-01",  # Cyrillic ie
    f"https://xn--managment-9fg.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com:444{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com:80{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com:99999{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com:-1{GOOD_PATH}?api-version=2025-07-01",
    f"http://management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"//evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"///evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https:evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https:/management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://evil.example/https://management.azure.com{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com//evil.example{GOOD_PATH}?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/..%2F..%2Fevil?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/%2e%2e/%2e%2e/x?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/../../x?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/./x?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a%2Fb?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a%5Cb?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a%252Fb?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a%00b?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a\r\nHost: evil.example"
    "?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a\x00b?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/a\tb?api-version=2025-07-01",
    f"https://management.azure.com/subscriptions/{SUB}/x?api-version=2025-07-01#frag",
    f"https://management.azure.com/subscriptions/{SUB}/x?api-version=2025-07-01&api-version=1",
    f"https://management.azure.com/subscriptions/{SUB}/x",
    "https://management.azure.com/" + "a/" * 1100 + "?api-version=2025-07-01",
    "https://[::1]/subscriptions/x",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "",
]


def parse(document: Any, endpoint: str = ARM) -> WatchRequest:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_watch_request(body, arm_endpoint=endpoint)


def assert_stays_on_endpoint(request: WatchRequest, endpoint: str = ARM) -> None:
    """The one property that protects the token: endpoint + path stays on the endpoint."""
    path = request.target.status_path
    final = urlsplit(endpoint + path)
    assert final.netloc == urlsplit(endpoint).netloc
    assert final.scheme == urlsplit(endpoint).scheme
    assert path.startswith("/subscriptions/")
    assert not path.startswith("//")
    segments = final.path.split("/")[1:]
    assert all(s and unquote(s) not in (".", "..") for s in segments), path
    assert not any(c in path for c in "\\#\r\n\x00\t ")
    assert all(0x20 < ord(c) < 0x7F for c in path)


@pytest.mark.parametrize("status_url", HOSTILE_STATUS_URLS)
def test_hostile_status_urls_are_refused(status_url: str) -> None:
    with pytest.raises(InvalidWatchRequestError):
        parse({"statusUrl": status_url})


@pytest.mark.parametrize(
    "operation_id",
    [
        "../x",
        "..",
        ".",
        "%2e%2e",
        "a/b",
        "a%2Fb",
        "a\\b",
        "a?x=1",
        "a#b",
        "a b",
        "a\r\nb",
        "a\x00b",
        "//evil.example",
        "é",
        "x" * 257,
        "",
    ],
)
def test_hostile_operation_ids_are_refused(operation_id: str) -> None:
    with pytest.raises(InvalidWatchRequestError):
        parse({"subscriptionId": SUB, "location": "westus", "operationId": operation_id})


@pytest.mark.parametrize("operation_id", ["@evil.example", "a@b:c", "*", "~x", "a=b+c"])
def test_odd_but_legal_operation_ids_stay_in_the_path(operation_id: str) -> None:
    request = parse({"subscriptionId": SUB, "location": "westus", "operationId": operation_id})
    assert_stays_on_endpoint(request)


@pytest.mark.parametrize(
    "location", ["west/us", "..", "west%2Fus", "west\nus", "//evil", "westus\x00", "w" * 65]
)
def test_hostile_locations_are_refused(location: str) -> None:
    with pytest.raises(InvalidWatchRequestError):
        parse({"subscriptionId": SUB, "location": location, "operationId": "op"})


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"context":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
        b"\xff\xfe{}",
        b'{"operationId": "\xc3\x28"}',
        b"\xed\xa0\x80",
        b'{"operationId": "a", "operationId": "b"}',
        b'{"timeout": 1e400, "subscriptionId": "x"}',
        b'{"timeout": ' + b"9" * 5000 + b"}",
        b'{"timeout": -0.0}',
        b'{"timeout": NaN}',
        b'{"timeout": Infinity}',
        b'{"pollState": {"attempt": ' + b"9" * 4000 + b"}}",
        b'{"correlationId": "' + b"c" * 10_000 + b'"}',
        b'{"statusUrl": "' + b"h" * 70_000 + b'"}',
        b"\x00",
        b"",
        b"null",
        b'"string"',
        b'{"statusUrl": "\\ud800"}',
        b'{"correlationId": "\\udc00"}',
    ],
)
def test_hostile_json_is_refused_with_the_rejection_type_only(body: bytes) -> None:
    with pytest.raises(InvalidWatchRequestError):
        parse_watch_request(body, arm_endpoint=ARM)


# -- properties -----------------------------------------------------------------------

_URL_PIECES = st.sampled_from(
    [
        "https://",
        "http://",
        "//",
        "/",
        "\\",
        "@",
        ":",
        ":443",
        ":444",
        "management.azure.com",
        "MANAGEMENT.AZURE.COM",
        "evil.example",
        ".",
        "..",
        "%2e",
        "%2E%2E",
        "%2f",
        "%5c",
        "%40",
        "%25",
        "%00",
        "#",
        "?",
        "&",
        "api-version=2025-07-01",
        "subscriptions",
        SUB,
        "providers",
        "Microsoft.Cache",
        "operationsStatus",
        "op",
        "\r\n",
        "\x00",
        "é",
        "xn--",
        "[::1]",
    ]
)
_HOSTILE_URLS = st.one_of(
    st.lists(_URL_PIECES, max_size=14).map("".join),
    st.tuples(
        st.sampled_from(["https://management.azure.com", "https://management.azure.com:443", ""]),
        st.lists(_URL_PIECES, max_size=10).map("".join),
        st.sampled_from(["", "?api-version=2025-07-01", "&api-version=2025-07-01"]),
    ).map("".join),
    st.text(max_size=200).map(lambda s: f"https://management.azure.com/subscriptions/{SUB}/" + s),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_HOSTILE_URLS)
def test_no_status_url_can_leave_the_endpoint(status_url: str) -> None:
    try:
        request = parse({"statusUrl": status_url})
    except InvalidWatchRequestError:
        return
    assert_stays_on_endpoint(request)


@settings(max_examples=200, deadline=None)
@given(_HOSTILE_URLS, st.sampled_from(["http://127.0.0.1:8080", "http://localhost:1", ARM]))
def test_no_status_url_can_leave_any_configured_endpoint(status_url: str, endpoint: str) -> None:
    try:
        request = parse({"statusUrl": status_url}, endpoint)
    except InvalidWatchRequestError:
        return
    assert_stays_on_endpoint(request, endpoint)


_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
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
        st.one_of(_JSON, _HOSTILE_URLS),
        max_size=8,
    )
)
def test_any_json_document_is_refused_or_stays_on_the_endpoint(document: dict[str, Any]) -> None:
    try:
        request = parse(document)
    except InvalidWatchRequestError:
        return
    assert_stays_on_endpoint(request)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=100, max_value=599), st.binary(max_size=300), _JSON)
def test_classify_response_never_raises_on_any_answer(
    status: int, body: bytes, document: Any
) -> None:
    for raw in (body, json.dumps(document).encode(), json.dumps({"status": document}).encode()):
        observation = classify_response(
            status, {"retry-after": raw[:40].decode("latin-1")}, raw, now=NOW
        )
        assert isinstance(observation, (StatusRead, ReadFailure))


# -- the whole handler ----------------------------------------------------------------


class _Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, 2**40)


class _CapturingSession(requests.Session):
    """Records where ArmClient would send the token; answers nothing (a connection error)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def get(self, url: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.urls.append(url)
        raise requests.ConnectionError("no network in unit tests")


HOSTILE_BODIES: list[bytes] = [
    *(json.dumps({"statusUrl": u, "correlationId": "run-1"}).encode() for u in HOSTILE_STATUS_URLS),
    b"\xff" * 100,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"subscriptionId": "x", "subscriptionId": "y"}',
    json.dumps({"subscriptionId": SUB, "location": "westus", "operationId": "../../evil"}).encode(),
    json.dumps(
        {"subscriptionId": SUB, "location": "westus", "operationId": "@evil.example"}
    ).encode(),
    json.dumps(
        {"statusUrl": f"https://management.azure.com{GOOD_PATH}?api-version=2025-07-01"}
    ).encode(),
    b'{"subscriptionId": "' + SUB.encode() + b'", "location": "westus", "operationId": "op",'
    b' "context": {"x": "\\ud800"}}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_handler_on_hostile_bodies_rejects_or_reads_only_from_the_arm_host(
    settings: Settings, body: bytes
) -> None:
    session = _CapturingSession()
    reader = ArmClient(ARM, _Credential(), session=session)  # type: ignore[arg-type]
    outputs = RecordingOutputs()
    deps = build_dependencies(settings, status_reader=reader, outputs=outputs, clock=lambda: NOW)

    result = handle_watch_message(intake_message(body, message_id="hostile-1"), deps)

    if result.action == "rejected":
        [event] = outputs.events
        document = assert_valid_event(event.body)
        assert document["type"] == "OpsStatus.Watch.Rejected"
        assert session.urls == []
    else:
        assert session.urls, "an accepted request reads the status"
    for url in session.urls:
        assert urlsplit(url).netloc == "management.azure.com"
        assert urlsplit(url).path.startswith("/subscriptions/")
    for message in [e.body for e in outputs.events] + [m.body for m, _ in outputs.scheduled]:
        assert TOKEN.encode() not in message


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "Failed", "error": {"code": "X", "message": "\\ud800 \\udfff"}}',
        b'{"status": "Succeeded", "name": "\\ud800"}',
    ],
)
def test_lone_surrogates_from_arm_still_give_a_valid_terminal_event(
    settings: Settings, body: bytes
) -> None:
    # Regression: events were encoded with str.encode() and raised UnicodeEncodeError on
    # every redelivery, so the watch ended in the dead-letter queue with no event.
    class Reader:
        def get_operation_status(self, request: WatchRequest) -> Any:
            return classify_response(200, {}, body, now=NOW)

    outputs = RecordingOutputs()
    deps = build_dependencies(settings, status_reader=Reader(), outputs=outputs, clock=lambda: NOW)
    good = json.dumps({"subscriptionId": SUB, "location": "westus", "operationId": "op"}).encode()

    result = handle_watch_message(intake_message(good, enqueued_time=NOW), deps)

    assert result.action == "finished"
    [event] = outputs.events
    assert_valid_event(event.body)
    event.body.decode("utf-8")  # strict: valid UTF-8


def test_lone_surrogate_in_a_context_still_gives_a_valid_terminal_event(settings: Settings) -> None:
    outputs = RecordingOutputs()

    class Reader:
        def get_operation_status(self, request: WatchRequest) -> Any:
            return StatusRead("Succeeded")

    deps = build_dependencies(settings, status_reader=Reader(), outputs=outputs, clock=lambda: NOW)
    body = HOSTILE_BODIES[-1]

    assert handle_watch_message(intake_message(body, enqueued_time=NOW), deps).action == "finished"
    [event] = outputs.events
    assert_valid_event(event.body)
    with contextlib.suppress(KeyError):
        assert json.loads(event.body)["data"]["context"] == {"x": "?"}


@pytest.mark.parametrize("levels", [600, 2_000])
def test_an_error_too_deep_to_encode_is_shrunk_not_raised(settings: Settings, levels: int) -> None:
    # Regression: ARM JSON that json.loads could parse but the event's json.dumps (a few
    # levels deeper) could not raised RecursionError on every redelivery: the watch was
    # dead-lettered with no event. Built directly, so the depth does not depend on the stack.
    error: dict[str, Any] = {"code": "Leaf", "message": "bottom"}
    for _ in range(levels):
        error = {"code": "Nested", "message": "level", "details": [error]}

    class Reader:
        def get_operation_status(self, request: WatchRequest) -> Any:
            return StatusRead("Failed", error=error)

    outputs = RecordingOutputs()
    deps = build_dependencies(settings, status_reader=Reader(), outputs=outputs, clock=lambda: NOW)
    good = json.dumps({"subscriptionId": SUB, "location": "westus", "operationId": "op"}).encode()

    assert handle_watch_message(intake_message(good, enqueued_time=NOW), deps).action == "finished"
    [event] = outputs.events
    document = json.loads(event.body)
    assert document["type"] == "OpsStatus.Operation.Failed"
    assert document["data"]["error"]["code"] == "Nested"
    assert len(event.body) < 256 * 1024


# -- input classes of the fuzz run, through the whole handler ----------------------------
# (benchmarks/fuzz.py sweeps the same classes exhaustively and counts them.)

_FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
_VALID_PARTS = {"subscriptionId": SUB, "location": "westus", "operationId": "op-1"}


def _handle(
    settings: Settings, queue: Queue, body: bytes, answer: Observation | None = None
) -> tuple[HandlingResult, RecordingOutputs, ScriptedStatusReader]:
    """Run the handler; check what every outcome must satisfy; return what it did."""
    reader = ScriptedStatusReader([answer or StatusRead("Running")])
    outputs = RecordingOutputs()
    deps = build_dependencies(
        settings, status_reader=reader, outputs=outputs, clock=lambda: NOW, sleep=lambda _: None
    )
    message = InboundMessage(
        queue=queue,
        body=body,
        message_id="fuzz-1",
        sequence_number=7,
        enqueued_time=NOW - timedelta(seconds=2),
        delivery_count=1,
    )
    result = handle_watch_message(message, deps)  # nothing may escape
    assert len(outputs.events) + len(outputs.scheduled) == 1
    for event in outputs.events:
        assert_valid_event(event.body)
    if result.action == "rejected":
        assert reader.requests == []
        assert json.loads(outputs.events[0].body)["type"] == "OpsStatus.Watch.Rejected"
    for request in reader.requests:
        assert_stays_on_endpoint(request)
    for poll, _ in outputs.scheduled:
        # what the product wrote, the product must accept on the next step
        assert_valid_poll_message(poll.body)
        parse_poll_message(poll.body, arm_endpoint=ARM, policy=settings.policy)
    return result, outputs, reader


def _poll_template(settings: Settings) -> dict[str, Any]:
    """A poll message exactly as the product writes it after a first read."""
    _, outputs, _ = _handle(settings, Queue.INTAKE, json.dumps(_VALID_PARTS).encode())
    [(poll, _)] = outputs.scheduled
    document: dict[str, Any] = json.loads(poll.body)
    document["pollState"]["failures"] = {
        "Transient": {"count": 1, "since": "2026-11-28T11:59:00.000Z"}
    }
    return document


def _nested_text(kind: str, levels: int) -> str:
    """JSON nested ``levels`` deep, written as text (json.dumps itself would recurse)."""
    if kind == "object":
        return '{"a":' * levels + "1" + "}" * levels
    return "[" * levels + "1" + "]" * levels


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target[name]
    target[last] = value
    return copy


# Nesting: depth d of the whole document as the parser counts it (the root object is 1).
_DEPTH_SHAPES = st.sampled_from(
    ["context objects", "context arrays", "unknown field", "poll context", "pollState"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(st.integers(min_value=3, max_value=2_000), _DEPTH_SHAPES)
@example(MAX_JSON_DEPTH, "context objects")
@example(MAX_JSON_DEPTH + 1, "context objects")
@example(2_000, "pollState")
def test_any_nesting_depth_up_to_2000_is_accepted_only_within_the_limit(
    settings: Settings, depth: int, shape: str
) -> None:
    head = json.dumps(_VALID_PARTS)[:-1]
    if shape == "context objects":
        queue, body = Queue.INTAKE, f'{head}, "context": {_nested_text("object", depth - 1)}}}'
    elif shape == "context arrays":
        queue, body = (
            Queue.INTAKE,
            f'{head}, "context": {{"a": {_nested_text("array", depth - 2)}}}}}',
        )
    elif shape == "unknown field":
        queue, body = Queue.INTAKE, f'{head}, "extra": {_nested_text("array", depth - 1)}}}'
    else:
        poll = _poll_template(settings)
        if shape == "poll context":
            text = json.dumps(poll)[:-1]
            body = f'{text}, "context": {_nested_text("object", depth - 1)}}}'
        else:
            state = json.dumps(poll.pop("pollState"))[:-1]
            state += f', "extra": {_nested_text("object", depth - 2)}}}'
            body = json.dumps(poll)[:-1] + f', "pollState": {state}}}'
        queue = Queue.POLLS

    result, _, _ = _handle(settings, queue, body.encode())

    assert (result.action != "rejected") == (depth <= MAX_JSON_DEPTH)


# Timestamps at the edges of what datetime represents (0001-01-01T00:00:00Z ..
# 9999-12-31T23:59:59.999999Z), with offsets that push a valid local time past an edge.
_EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T13:59:59.999999+14:00",
    "0001-01-01T14:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T09:59:59.999999-14:00",
    "9999-12-31T10:00:00-14:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T00:00:00-23:59",
    "0001-01-01T23:59:00+23:59",
]


def _rfc3339(moment: datetime, offset_minutes: int, fraction: bool) -> str:
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if fraction:
        text += f".{moment.microsecond:06d}"
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


_TIMESTAMPS = st.one_of(
    st.sampled_from(_EXTREME_TIMES),
    st.builds(
        _rfc3339,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
        st.booleans(),
    ),
)
_ANSWERS = st.sampled_from(
    [
        StatusRead("Running"),
        StatusRead("Succeeded"),
        ReadFailure(ReadFailureKind.TRANSIENT, "fuzz"),
        ReadFailure(ReadFailureKind.TOKEN_UNAVAILABLE, "fuzz"),
        ReadFailure(ReadFailureKind.NOT_FOUND, "fuzz", http_status=404),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(_TIMESTAMPS, _ANSWERS)
def test_extreme_deadlines_with_offsets_are_refused_or_watched_never_raised(
    settings: Settings, deadline: str, answer: Observation
) -> None:
    body = json.dumps({**_VALID_PARTS, "deadline": deadline}).encode()

    result, _, _ = _handle(settings, Queue.INTAKE, body, answer)

    if deadline in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        assert result.action == "rejected"  # no such instant in UTC


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(
    st.sampled_from(
        ["pollState.firstSeen", "pollState.deadline", "both", "pollState.failures.Transient.since"]
    ),
    _TIMESTAMPS,
    _ANSWERS,
)
@example("both", "9999-12-31T23:59:59Z", StatusRead("Running"))
def test_extreme_poll_state_times_are_refused_or_watched_never_raised(
    settings: Settings, where: str, moment: str, answer: Observation
) -> None:
    poll = _poll_template(settings)
    if where == "both":
        poll = _with(_with(poll, "pollState.firstSeen", moment), "pollState.deadline", moment)
    else:
        poll = _with(poll, where, moment)

    _handle(settings, Queue.POLLS, json.dumps(poll).encode(), answer)


# Whitespace and line ends, ASCII and Unicode, after (or before) every string field.
_SPACES = st.sampled_from(
    [
        *(" ", "\n", "\r\n", "\r", "\t", "\x0b", "\x0c", "\x00", "\x85", "\xa0"),
        *("\u2028", "\u3000", "\ufeff", " \n"),
    ]
)
_INTAKE_STRINGS = {
    "subscriptionId": SUB,
    "location": "westus",
    "operationId": "op-1",
    "apiVersion": "2025-07-01",
    "correlationId": "run-1",
    "deadline": "2026-11-28T13:00:00Z",
    "statusUrl": f"{ARM}{GOOD_PATH}?api-version=2025-07-01",
    "context.stage": "scale",
}
_POLL_STRINGS = [
    "subscriptionId",
    "operationId",
    "apiVersion",
    "watchId",
    "submissionId",
    "pollState.firstSeen",
    "pollState.deadline",
    "pollState.lastStatus",
    "pollState.failures.Transient.since",
]
# Fields whose value must match a strict pattern: padding them must be refused.
_STRICT = {"subscriptionId", "operationId", "apiVersion", "correlationId", "statusUrl", "watchId"}


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(
    st.sampled_from(
        [*(("intake", f) for f in _INTAKE_STRINGS), *(("polls", f) for f in _POLL_STRINGS)]
    ),
    _SPACES,
    st.booleans(),
)
def test_whitespace_around_any_string_field_never_escapes_or_reaches_the_path(
    settings: Settings, target: tuple[str, str], space: str, trailing: bool
) -> None:
    queue, field = target
    if queue == "intake":
        base: dict[str, Any] = (
            {"statusUrl": _INTAKE_STRINGS["statusUrl"]}
            if field == "statusUrl"
            else {
                k: v for k, v in _INTAKE_STRINGS.items() if k not in ("statusUrl", "context.stage")
            }
            | {"context": {"stage": "scale"}}
        )
    else:
        base = _poll_template(settings)
    value = base
    for name in field.split("."):
        value = value[name]
    padded = value + space if trailing else space + value

    result, _, reader = _handle(
        settings,
        Queue.INTAKE if queue == "intake" else Queue.POLLS,
        json.dumps(_with(base, field, padded)).encode(),
    )

    if field.split(".")[-1] in _STRICT:
        assert result.action == "rejected", (field, padded)
    for request in reader.requests:
        assert not any(c.isspace() or c in "\x00\ufeff" for c in request.target.status_path)
        assert request.correlation_id in (None, "run-1")


_DIGIT_SYSTEMS = [
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic
    "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9",  # Extended Arabic-Indic
    "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f",  # Devanagari
    "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",  # fullwidth
    "".join(chr(0x1D7CE + i) for i in range(10)),  # mathematical bold
]


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(
    st.sampled_from(
        [
            ("intake", "apiVersion"),
            ("intake", "statusUrl"),
            ("intake", "subscriptionId"),
            ("intake", "deadline"),
            ("polls", "apiVersion"),
            ("polls", "watchId"),
            ("polls", "pollState.firstSeen"),
            ("polls", "pollState.deadline"),
        ]
    ),
    st.sampled_from(_DIGIT_SYSTEMS),
    st.data(),
)
def test_unicode_digits_are_not_digits_anywhere_a_number_is_parsed(
    settings: Settings, target: tuple[str, str], digits: str, data: st.DataObject
) -> None:
    queue, field = target
    if queue == "intake":
        base: dict[str, Any] = (
            {"statusUrl": f"{ARM}{GOOD_PATH}?api-version=2025-07-01"}
            if field == "statusUrl"
            else {**_VALID_PARTS, "apiVersion": "2025-07-01", "deadline": "2026-11-28T13:00:00Z"}
        )
    else:
        base = _poll_template(settings)
    value = base
    for name in field.split("."):
        value = value[name]
    positions = [i for i, c in enumerate(value) if "0" <= c <= "9"]
    if field == "statusUrl":  # the api-version in the query
        positions = [i for i in positions if i > value.index("api-version=")]
    chosen = data.draw(st.lists(st.sampled_from(positions), min_size=1, unique=True))
    chars = list(value)
    for i in chosen:
        chars[i] = digits[int(chars[i])]

    result, _, _ = _handle(
        settings,
        Queue.INTAKE if queue == "intake" else Queue.POLLS,
        json.dumps(_with(base, field, "".join(chars)), ensure_ascii=False).encode(),
    )

    assert result.action == "rejected", (field, "".join(chars))


# -- the secret detector itself (tests/secrets.py) -------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJ0eXAi",
        "token=sim-0123456789abcdef",
        "Endpoint=sb://x;SharedAccessKeyName=Root;SharedAccessKey=SAS_KEY_VALUE",
        "SharedAccessKey=abcDEF123=",
        "SharedAccessSignature sr=sb%3a%2f%2fx&sig=AbCdEf0123456789%3d&se=1&skn=Root",
    ],
)
def test_the_secret_detector_catches_injected_secrets_in_logs_and_messages(text: str) -> None:
    from tests.secrets import CAPTURE, find_secrets

    assert find_secrets(text)
    before = len(CAPTURE.findings)
    logging.getLogger("ops_status.handler").warning("injected %s", text)
    CAPTURE.check_message("injected-entity", text.encode())
    caught = CAPTURE.findings[before:]
    try:
        assert {f.where for f in caught} == {
            "log ops_status.handler:WARNING",
            "message on injected-entity",
        }
    finally:
        del CAPTURE.findings[before:]  # injected on purpose: not a leak


@pytest.mark.parametrize(
    "text",
    ["SharedAccessKeyName=RootManageSharedAccessKey", "simulated", "bearer of bad news", "sig=1"],
)
def test_the_secret_detector_ignores_lookalikes(text: str) -> None:
    from tests.secrets import find_secrets

    assert find_secrets(text) == []
