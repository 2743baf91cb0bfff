"""ArmClient over real HTTP on loopback, authenticated through the real managed identity."""

from __future__ import annotations

import json
import uuid

import pytest

from emulators.arm import ArmSimulator, Step
from ops_status.arm import MAX_RESPONSE_BYTES, USER_AGENT
from ops_status.observation import OperationState, ReadFailure, ReadFailureKind, StatusRead
from ops_status.request import WatchRequest, parse_watch_request
from tests.conftest import sample
from tests.integration.conftest import ArmStack


def request(stack: ArmStack, operation_id: str, **extra: object) -> WatchRequest:
    body = json.dumps(stack.parts(operation_id, **extra)).encode()
    return parse_watch_request(body, arm_endpoint=stack.settings.arm_endpoint)


def test_status_read_sends_token_api_version_and_tracing_headers(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.succeeded()])

    observation = stack.client().get_operation_status(
        request(stack, "op-1", correlationId="5f0c5e1e-8a38-4c59-9d59-1a4b2a3c4d5e")
    )

    assert isinstance(observation, StatusRead)
    assert observation.state is OperationState.SUCCEEDED
    [seen] = stack.arm.requests_for("op-1")
    assert seen.path == (
        "/subscriptions/e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f/providers/Microsoft.Cache/"
        "locations/westus/operationsStatus/op-1"
    )
    assert seen.query["api-version"] == "2025-07-01"
    assert seen.headers["Authorization"] == "Bearer " + stack.arm.expected_token  # type: ignore[operator]
    assert seen.headers["User-Agent"] == USER_AGENT
    assert uuid.UUID(seen.headers["x-ms-client-request-id"])
    assert seen.headers["x-ms-correlation-request-id"] == "5f0c5e1e-8a38-4c59-9d59-1a4b2a3c4d5e"


def test_free_form_correlation_id_is_sent_as_a_stable_guid(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.running()])
    client = stack.client()

    client.get_operation_status(request(stack, "op-1", correlationId="pipeline-run-1"))
    client.get_operation_status(request(stack, "op-1", correlationId="pipeline-run-1"))

    first, second = stack.arm.requests_for("op-1")
    sent = first.headers["x-ms-correlation-request-id"]
    assert uuid.UUID(sent)
    assert sent == second.headers["x-ms-correlation-request-id"]
    assert first.headers["x-ms-client-request-id"] != second.headers["x-ms-client-request-id"]


def test_many_checks_in_one_process_cost_one_token_and_one_connection(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.running()])
    client = stack.client()

    for _ in range(25):
        assert isinstance(client.get_operation_status(request(stack, "op-1")), StatusRead)

    assert stack.identity.request_count() == 1
    assert stack.arm.connections_opened == 1
    assert len(stack.arm.requests_for("op-1")) == 25


def test_running_then_failed_with_nested_error_payload_intact(stack: ArmStack) -> None:
    arm_error = sample("arm-status-failed-nested.json")["error"]["error"]
    stack.arm.script("op-1", [Step.running(percent_complete=30), Step.failed(error=arm_error)])
    client = stack.client()

    running = client.get_operation_status(request(stack, "op-1"))
    failed = client.get_operation_status(request(stack, "op-1"))

    assert isinstance(running, StatusRead)
    assert running.percent_complete == 30
    assert isinstance(failed, StatusRead)
    assert failed.state is OperationState.FAILED
    assert failed.error == arm_error


def test_flat_error_shape_is_read_the_same_way(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.failed(error={"code": "Flat", "message": "m"}, nested=False)])

    failed = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(failed, StatusRead)
    assert failed.error == {"code": "Flat", "message": "m"}


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        (Step.throttled(retry_after="12"), ReadFailureKind.THROTTLED),
        (Step.server_error(503), ReadFailureKind.TRANSIENT),
        (Step.not_found(), ReadFailureKind.NOT_FOUND),
        (Step.forbidden(), ReadFailureKind.UNAUTHORIZED),
        (Step.bad_request(), ReadFailureKind.REJECTED),
        (Step.malformed(), ReadFailureKind.MALFORMED),
        (Step.no_status(), ReadFailureKind.MALFORMED),
        (Step.dropped(), ReadFailureKind.TRANSIENT),
    ],
)
def test_each_failure_is_classified_not_raised(
    stack: ArmStack, step: Step, kind: ReadFailureKind
) -> None:
    stack.arm.script("op-1", [step])

    observation = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is kind


def test_throttling_carries_retry_after_and_remaining_reads(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.throttled(retry_after="12")])

    observation = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, ReadFailure)
    assert observation.retry_after == 12
    assert observation.error is not None


def test_remaining_read_budget_is_reported_on_every_answer(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.running()])

    observation = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, StatusRead)
    assert observation.remaining_reads is not None


def test_not_found_then_found(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.not_found(repeat=2), Step.succeeded()])
    client = stack.client()

    kinds = [client.get_operation_status(request(stack, "op-1")) for _ in range(3)]

    assert [type(k) for k in kinds] == [ReadFailure, ReadFailure, StatusRead]


def test_slow_response_is_a_timeout_not_a_hang(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.succeeded().replace(delay=3)])

    observation = stack.client(read_timeout=0.5).get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TRANSIENT
    assert "timeout" in observation.detail


def test_slow_drip_body_is_cut_off_by_the_overall_deadline(stack: ArmStack) -> None:
    stack.arm.script("op-1", [Step.succeeded().replace(drip=0.2)])

    observation = stack.client(connect_timeout=0.5, read_timeout=0.5).get_operation_status(
        request(stack, "op-1")
    )

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TRANSIENT
    assert "too slow" in observation.detail


def test_gigantic_body_is_not_read_past_the_cap(stack: ArmStack) -> None:
    huge = b'{"status": "Running", "pad": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}'
    stack.arm.script("op-1", [Step.raw(200, huge)])

    observation = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, ReadFailure)
    assert "larger than" in observation.detail


def test_wrong_token_is_an_authorization_failure(stack: ArmStack) -> None:
    stack.arm.expected_token = "some-other-token"
    stack.arm.script("op-1", [Step.succeeded()])

    observation = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.UNAUTHORIZED
    assert observation.http_status == 401


def test_identity_endpoint_failure_is_a_failed_read_not_an_exception(stack: ArmStack) -> None:
    stack.identity.fail_next(100, status=500)
    stack.arm.script("op-1", [Step.succeeded()])

    observation = stack.client().get_operation_status(request(stack, "op-1"))

    assert isinstance(observation, ReadFailure)
    assert observation.kind is ReadFailureKind.TOKEN_UNAVAILABLE
    assert "500" in observation.detail
    assert stack.arm.requests_for("op-1") == []


def test_redirects_are_not_followed_so_the_token_never_leaves(stack: ArmStack) -> None:
    with ArmSimulator() as elsewhere:
        stack.arm.script("op-1", [Step.raw(302, b"", {"Location": elsewhere.status_url("op-1")})])
        elsewhere.script("op-1", [Step.succeeded()])

        observation = stack.client().get_operation_status(request(stack, "op-1"))

        assert isinstance(observation, ReadFailure)
        assert elsewhere.requests == []


def test_proxy_settings_from_the_environment_are_ignored(
    stack: ArmStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.arm.script("op-1", [Step.succeeded()])
    client = stack.client()
    # The identity endpoint is reached by azure-core, which has its own proxy rules;
    # this test is about the ARM request, so the token is fetched before the proxy is set.
    client.get_operation_status(request(stack, "op-1"))
    with ArmSimulator() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.endpoint)
        monkeypatch.setenv("http_proxy", proxy.endpoint)
        monkeypatch.setenv("NO_PROXY", "")

        observation = client.get_operation_status(request(stack, "op-1"))

        assert isinstance(observation, StatusRead)
        assert proxy.requests == []


def test_status_url_watch_reads_that_exact_url(stack: ArmStack) -> None:
    stack.arm.script("abc*123", [Step.succeeded()])
    url = stack.arm.status_url("abc*123", provider="Microsoft.Storage")
    watch = parse_watch_request(
        json.dumps({"statusUrl": url}).encode(), arm_endpoint=stack.settings.arm_endpoint
    )

    observation = stack.client().get_operation_status(watch)

    assert isinstance(observation, StatusRead)
    [seen] = stack.arm.requests_for("abc*123")
    assert "/providers/Microsoft.Storage/" in seen.path
