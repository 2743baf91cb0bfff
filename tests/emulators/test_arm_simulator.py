"""The ARM operation-status simulator (emulators.arm), driven over real HTTP with requests.

These tests pin what the simulator promises the product's tests: ARM-shaped bodies and
headers, ARM's front-door checks, poll-by-poll scripts, fault injection and recording.

Long because the simulator's promises are many and each gets its own small test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.arm import (
    DEFAULT_SUBSCRIPTION_ID,
    ArmSimulator,
    Step,
    load_scripts,
)

TOKEN = "tok-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def arm() -> Iterator[ArmSimulator]:
    with ArmSimulator(TOKEN) as simulator:
        yield simulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def poll(
    http: requests.Session, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    return http.get(url, headers=AUTH if headers is None else headers, timeout=5, **kwargs)


# -- scripts and bodies ----------------------------------------------------------------


def test_script_advances_one_step_per_poll_and_the_last_step_repeats(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.running(percent_complete=10), Step.running(), Step.succeeded()])
    url = arm.status_url("op-1", location="West US")

    bodies = [poll(http, url).json() for _ in range(4)]

    assert [b["status"] for b in bodies] == ["Running", "Running", "Succeeded", "Succeeded"]
    assert bodies[0]["percentComplete"] == 10
    assert "percentComplete" not in bodies[1]
    # The official example's shape: the id carries the normalised location ("westus").
    assert set(bodies[2]) == {"id", "name", "status", "startTime", "endTime"}
    assert bodies[2]["id"] == (
        f"/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/providers/Microsoft.Cache/locations/westus"
        "/operationsStatus/op-1"
    )
    assert bodies[2]["name"] == "op-1"
    assert bodies[2]["startTime"].endswith("Z")
    assert bodies[0]["startTime"] == bodies[3]["startTime"]
    assert bodies[2]["endTime"] == bodies[3]["endTime"]  # a finished operation stays put


def test_repeat_serves_a_step_for_that_many_polls(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.running(repeat=3), Step.succeeded()])
    url = arm.status_url("op-1")

    statuses = [poll(http, url).json()["status"] for _ in range(5)]

    assert statuses == ["Running"] * 3 + ["Succeeded"] * 2


def test_for_seconds_holds_a_step_for_a_duration(arm: ArmSimulator, http: requests.Session) -> None:
    arm.script("op-1", [Step.running(for_seconds=0.3), Step.succeeded()])
    url = arm.status_url("op-1")

    first, second = (poll(http, url).json()["status"] for _ in range(2))
    time.sleep(0.35)
    third = poll(http, url).json()["status"]

    assert (first, second, third) == ("Running", "Running", "Succeeded")


@pytest.mark.parametrize(
    ("nested", "path_to_error"),
    [(True, ("error", "error")), (False, ("error",))],
    ids=["nested-ErrorResponse", "flat-ErrorDetail"],
)
def test_failed_carries_arm_error_in_either_shape(
    arm: ArmSimulator, http: requests.Session, nested: bool, path_to_error: tuple[str, ...]
) -> None:
    arm.script("op-1", [Step.failed(nested=nested)])

    response = poll(http, arm.status_url("op-1"))

    assert response.status_code == 200  # the read succeeded; the operation failed
    body = response.json()
    assert body["status"] == "Failed"
    assert {"startTime", "endTime"} <= set(body)
    error = body
    for key in path_to_error:
        error = error[key]
    assert error["code"] == "ResourceOperationFailure"
    assert {"code", "message", "target", "details", "additionalInfo"} <= set(error)
    assert error["details"][0]["code"] == "QuotaExceeded"
    assert error["additionalInfo"][0]["type"] == "QuotaDetails"
    assert isinstance(error["additionalInfo"][0]["info"], dict)


def test_failed_with_custom_error_and_terminal_spellings(
    arm: ArmSimulator, http: requests.Session
) -> None:
    custom = {"code": "Conflict", "message": "Operation {operation_id} lost a race."}
    arm.script("f", [Step.failed(custom, nested=False)])
    arm.script("c", [Step.canceled()])
    arm.script("s", [Step.succeeded("succeeded")])  # case varies in the wild

    failed = poll(http, arm.status_url("f")).json()
    canceled = poll(http, arm.status_url("c")).json()
    succeeded = poll(http, arm.status_url("s")).json()

    assert failed["error"] == {"code": "Conflict", "message": "Operation f lost a race."}
    assert canceled["status"] == "Canceled"
    assert "endTime" in canceled
    assert succeeded["status"] == "succeeded"


@pytest.mark.parametrize(
    ("step", "status", "code", "retry_after"),
    [
        (Step.throttled(), 429, "TooManyRequests", "12"),
        (Step.server_error(), 503, "ServiceUnavailable", None),
        (Step.server_error(500, retry_after="7"), 500, "InternalServerError", "7"),
        (Step.not_found(), 404, "NotFound", None),
        (Step.forbidden(), 403, "AuthorizationFailed", None),
        (Step.bad_request(), 400, "InvalidApiVersionParameter", None),
    ],
    ids=lambda value: value.kind if isinstance(value, Step) else None,
)
def test_error_steps_answer_arm_error_bodies_and_consume_a_poll(
    arm: ArmSimulator,
    http: requests.Session,
    step: Step,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    arm.script("op-1", [step, Step.succeeded()])
    url = arm.status_url("op-1")

    response = poll(http, url)
    after = poll(http, url)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert response.headers.get("Retry-After") == retry_after
    assert after.json()["status"] == "Succeeded"


def test_forbidden_names_the_action_and_subscription(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.forbidden()])

    message = poll(http, arm.status_url("op-1", subscription_id="sub-9")).json()["error"]["message"]

    assert "Microsoft.Cache/locations/operationsStatus/read" in message
    assert "/subscriptions/sub-9" in message


def test_malformed_no_status_and_raw_steps(arm: ArmSimulator, http: requests.Session) -> None:
    arm.script(
        "op-1",
        [
            Step.malformed(),
            Step.no_status(),
            Step.raw(202, {"odd": True}, {"Location": "/elsewhere", "Content-Type": "text/x"}),
            Step.raw(200, b"\x00\x01"),
        ],
    )
    url = arm.status_url("op-1")

    malformed, no_status, raw_json, raw_bytes = (poll(http, url) for _ in range(4))

    assert malformed.status_code == 200
    assert malformed.content == b"<html>oops"
    assert malformed.headers["Content-Type"] == "application/json; charset=utf-8"
    with pytest.raises(requests.JSONDecodeError):
        malformed.json()
    assert no_status.status_code == 200
    assert "status" not in no_status.json()
    assert no_status.json()["name"] == "op-1"
    assert raw_json.status_code == 202
    assert raw_json.json() == {"odd": True}
    assert raw_json.headers["Location"] == "/elsewhere"
    assert raw_json.headers["Content-Type"] == "text/x"  # step headers win
    assert raw_bytes.content == b"\x00\x01"


def test_other_providers_async_operation_urls_are_served_by_last_segment(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("a b/c", [Step.succeeded()])
    url = (
        f"{arm.endpoint}/subscriptions/s-1/providers/Microsoft.Foo/locations/westus"
        "/asyncOperations/a%20b%2Fc?api-version=2024-01-01"
    )

    response = poll(http, url)

    assert response.status_code == 200
    assert response.json()["status"] == "Succeeded"
    assert arm.requests[-1].operation_id == "a b/c"  # decoded, %2F kept in the segment


def test_unscripted_operations_and_paths_outside_subscriptions_are_404(
    arm: ArmSimulator, http: requests.Session
) -> None:
    unknown = poll(http, arm.status_url("nobody-scripted-me"))
    outside = poll(
        http, f"{arm.endpoint}/providers/Microsoft.Cache/operations?api-version=2025-07-01"
    )

    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NotFound"
    assert outside.status_code == 404


def test_unscript_forgets_and_script_restarts_progress(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.running(), Step.succeeded()])
    url = arm.status_url("op-1")
    poll(http, url)
    arm.script("op-1", [Step.running(), Step.succeeded()])
    restarted = poll(http, url).json()["status"]
    arm.unscript("op-1")

    assert restarted == "Running"
    assert poll(http, url).status_code == 404


# -- ARM's front-door checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AuthenticationFailed"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "AuthenticationFailed"),
        ({"Authorization": "Bearer "}, "AuthenticationFailed"),
        ({"Authorization": "Bearer not-the-token"}, "InvalidAuthenticationToken"),
    ],
    ids=["missing", "not-bearer", "empty-bearer", "wrong-token"],
)
def test_bad_credentials_are_401_with_a_bearer_challenge_and_consume_no_step(
    arm: ArmSimulator, http: requests.Session, headers: dict[str, str], code: str
) -> None:
    arm.script("op-1", [Step.running(), Step.succeeded()])
    url = arm.status_url("op-1")

    rejected = poll(http, url, headers=headers)
    accepted = poll(http, url)

    assert rejected.status_code == 401
    assert rejected.json()["error"]["code"] == code
    assert rejected.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    assert 'error="invalid_token"' in rejected.headers["WWW-Authenticate"]
    assert accepted.json()["status"] == "Running"  # the 401 never reached the script


def test_without_expected_token_any_bearer_is_accepted_but_one_is_required(
    http: requests.Session,
) -> None:
    with ArmSimulator() as arm:
        arm.script("op-1", [Step.succeeded()])
        url = arm.status_url("op-1")

        assert poll(http, url, headers={"Authorization": "Bearer anything"}).status_code == 200
        assert poll(http, url, headers={}).status_code == 401


@pytest.mark.parametrize(
    ("api_version", "code"),
    [
        (None, "MissingApiVersionParameter"),
        ("", "MissingApiVersionParameter"),
        ("latest", "InvalidApiVersionParameter"),
        ("2025-7-1", "InvalidApiVersionParameter"),
        ("2025-13-01", "InvalidApiVersionParameter"),
        ("2025-07-01-previewish", "InvalidApiVersionParameter"),
    ],
)
def test_api_version_is_required_in_arm_date_form(
    arm: ArmSimulator, http: requests.Session, api_version: str | None, code: str
) -> None:
    arm.script("op-1", [Step.succeeded()])

    response = poll(http, arm.status_url("op-1", api_version=api_version))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_preview_versions_pass_and_supported_versions_can_be_restricted(
    http: requests.Session,
) -> None:
    with ArmSimulator(TOKEN, supported_api_versions={"2025-07-01"}) as arm:
        arm.script("op-1", [Step.succeeded()])

        ok = poll(http, arm.status_url("op-1", api_version="2025-07-01"))
        unsupported = poll(http, arm.status_url("op-1", api_version="2024-06-01-preview"))

    assert ok.status_code == 200
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "NoRegisteredProviderFound"


# -- headers and throttling ------------------------------------------------------------


def test_every_response_carries_arm_headers(arm: ArmSimulator, http: requests.Session) -> None:
    arm.script("op-1", [Step.succeeded()])
    correlation = "0f8fad5b-d9cb-469f-a165-70867728950e"
    responses = [
        poll(
            http,
            arm.status_url("op-1"),
            headers={**AUTH, "x-ms-correlation-request-id": correlation},
        ),
        poll(http, arm.status_url("op-1"), headers={}),  # 401
        poll(http, arm.status_url("missing")),  # 404
    ]

    for response in responses:
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.headers["x-ms-request-id"]
        assert response.headers["x-ms-correlation-request-id"]
        assert response.headers["x-ms-ratelimit-remaining-subscription-reads"].isdigit()
    assert responses[0].headers["x-ms-correlation-request-id"] == correlation
    assert len({r.headers["x-ms-request-id"] for r in responses}) == 3


def test_client_request_id_is_echoed_only_when_asked(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.succeeded()])
    url = arm.status_url("op-1")
    client_id = {"x-ms-client-request-id": "c-1"}

    echoed = poll(http, url, headers={**AUTH, **client_id, "x-ms-return-client-request-id": "true"})
    silent = poll(http, url, headers={**AUTH, **client_id})

    assert echoed.headers["x-ms-client-request-id"] == "c-1"
    assert "x-ms-client-request-id" not in silent.headers


def test_remaining_reads_count_down_per_subscription(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.running()])

    def remaining(subscription: str) -> int:
        response = poll(http, arm.status_url("op-1", subscription_id=subscription))
        return int(response.headers["x-ms-ratelimit-remaining-subscription-reads"])

    a1, a2, b1 = remaining("sub-a"), remaining("sub-a"), remaining("sub-b")

    assert a2 == a1 - 1
    assert b1 == a1  # a separate budget


def test_token_bucket_throttles_then_refills(http: requests.Session) -> None:
    with ArmSimulator(TOKEN, read_budget=3, refill_per_second=10) as arm:
        arm.script("op-1", [Step.running(), Step.succeeded()])
        url = arm.status_url("op-1")

        allowed = [poll(http, url) for _ in range(3)]
        throttled = poll(http, url)
        time.sleep(0.15)  # 10/s refills one read in 0.1 s
        refilled = poll(http, url)

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["x-ms-ratelimit-remaining-subscription-reads"] for r in allowed] == [
        "2",
        "1",
        "0",
    ]
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert throttled.headers["Retry-After"] == "1"
    assert refilled.status_code == 200
    # Throttled reads never reach the resource provider, so they consume no step.
    assert [r.json()["status"] for r in [*allowed, refilled]] == ["Running"] + ["Succeeded"] * 3


# -- recording and connections ---------------------------------------------------------


def test_requests_are_recorded_with_case_insensitive_headers(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.running()])
    arm.script("op-2", [Step.running()])
    before = time.time()
    poll(http, arm.status_url("op-1"), headers={**AUTH, "X-Custom": "v"})
    poll(http, arm.status_url("op-2"))
    poll(http, arm.status_url("op-1"), headers={})

    recorded = arm.requests_for("op-1")

    assert [r.response_status for r in recorded] == [200, 401]
    first = recorded[0]
    assert first.method == "GET"
    assert first.path.endswith("/operationsStatus/op-1")
    assert first.query == {"api-version": "2025-07-01"}
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["x-custom"] == "v"
    assert "X-CUSTOM" in first.headers
    assert first.subscription_id == DEFAULT_SUBSCRIPTION_ID
    assert before <= first.received_at <= time.time()
    assert len(arm.requests) == 3

    arm.clear()

    assert arm.requests == []
    assert arm.connections_opened == 0


def test_keep_alive_reuse_is_visible_in_connections_opened(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.running()])
    url = arm.status_url("op-1")

    for _ in range(5):
        poll(http, url)
    reused = arm.connections_opened
    for _ in range(3):
        with requests.Session() as fresh:
            poll(fresh, url)

    assert reused == 1
    assert arm.connections_opened == 4


def test_concurrent_polls_consume_each_step_exactly_once(arm: ArmSimulator) -> None:
    arm.script("op-1", [Step.running(repeat=10), Step.succeeded()])
    url = arm.status_url("op-1")
    statuses: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(3):
                status = poll(session, url).json()["status"]
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses.count("Running") == 10
    assert statuses.count("Succeeded") == 20


# -- faults ----------------------------------------------------------------------------


def test_delay_trips_the_client_read_timeout(arm: ArmSimulator, http: requests.Session) -> None:
    arm.script("op-1", [Step.running(delay=2.0), Step.succeeded()])
    url = arm.status_url("op-1")

    with pytest.raises(requests.ReadTimeout):
        http.get(url, headers=AUTH, timeout=(1, 0.2))
    after = poll(http, url)

    assert after.json()["status"] == "Succeeded"


def test_drop_connection_resets_without_answering(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.dropped(), Step.succeeded()])
    url = arm.status_url("op-1")

    with pytest.raises(requests.ConnectionError):
        poll(http, url)
    after = poll(http, url)

    assert after.json()["status"] == "Succeeded"
    assert [r.response_status for r in arm.requests_for("op-1")] == [None, 200]
    assert arm.connections_opened == 2


def test_drip_sends_headers_at_once_and_the_body_slowly(
    arm: ArmSimulator, http: requests.Session
) -> None:
    arm.script("op-1", [Step.succeeded().replace(drip=0.02)])
    started = time.monotonic()

    with http.get(arm.status_url("op-1"), headers=AUTH, timeout=5, stream=True) as response:
        headers_after = time.monotonic() - started
        body = response.content
    body_after = time.monotonic() - started

    assert json.loads(body)["status"] == "Succeeded"
    pieces = -(-len(body) // 16)
    assert body_after >= pieces * 0.02 * 0.9
    assert headers_after < body_after / 2


def test_stop_closes_idle_keep_alive_connections(http: requests.Session) -> None:
    arm = ArmSimulator(TOKEN).start()
    arm.script("op-1", [Step.running()])
    url = arm.status_url("op-1")
    poll(http, url)

    arm.stop()

    # A pooled connection must not still be answered by a leftover handler thread.
    with pytest.raises(requests.ConnectionError):
        poll(http, url)
    assert not arm.running


def test_simulators_refuse_non_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ArmSimulator(host="0.0.0.0")


def test_endpoint_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = ArmSimulator().endpoint


# -- scripts from JSON and the CLI -----------------------------------------------------


def test_step_from_dict_covers_the_cli_script_format(tmp_path: Path) -> None:
    path = tmp_path / "scripts.json"
    path.write_text(
        json.dumps(
            {
                "op-1": [{"kind": "running", "repeat": 3}, {"kind": "succeeded"}],
                "op-2": [{"kind": "raw", "status": 418, "body": "teapot"}, {"kind": "failed"}],
            }
        )
    )

    scripts = load_scripts(path)

    assert scripts["op-1"] == [Step.running(repeat=3), Step.succeeded()]
    assert scripts["op-2"][0] == Step.raw(418, b"teapot")
    assert scripts["op-2"][1].kind == "failed"
    with pytest.raises(ValueError, match="unknown step kind"):
        Step.from_dict({"kind": "exploded"})
    with pytest.raises(ValueError, match="bad options"):
        Step.from_dict({"kind": "succeeded", "percent_complete": 5})
    with pytest.raises(ValueError, match="repeat"):
        Step.running(repeat=0)


def test_cli_serves_a_script_file(tmp_path: Path, http: requests.Session) -> None:
    scripts = tmp_path / "scripts.json"
    scripts.write_text(json.dumps({"op-1": [{"kind": "running"}, {"kind": "succeeded"}]}))
    command = [
        sys.executable, "-m", "emulators.arm", "--port", "0", "--token", "tok",
        "--script", str(scripts),
    ]  # fmt: skip

    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            endpoint = banner.rsplit(" ", 1)[-1].strip()
            url = (
                f"{endpoint}/subscriptions/s/providers/Microsoft.Cache/locations/westus"
                "/operationsStatus/op-1?api-version=2025-07-01"
            )
            headers = {"Authorization": "Bearer tok"}
            statuses = [poll(http, url, headers=headers).json()["status"] for _ in range(2)]
            missing = poll(http, url.replace("op-1", "op-9"), headers=headers)
        finally:
            process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0

    assert banner.startswith("ARM simulator listening on http://127.0.0.1:")
    assert statuses == ["Running", "Succeeded"]
    assert missing.status_code == 404
