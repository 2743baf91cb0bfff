"""The managed-identity endpoint simulator (emulators.identity), driven by the real SDK.

Every credential test goes through azure-identity's own ``ManagedIdentityCredential``
(App Service flavour, msal underneath), so these tests also pin the SDK behaviour the
product relies on: what it sends, what it caches, and what it raises when the endpoint
misbehaves. If an azure-identity/msal upgrade changes any of that, a test here says so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential

from emulators.arm import ArmSimulator, Step
from emulators.identity import API_VERSION, IdentitySimulator

ARM_SCOPE = "https://management.azure.com/.default"
ARM_RESOURCE = "https://management.azure.com"  # azure-identity strips "/.default"
REPO = Path(__file__).resolve().parents[2]

# The 2017-09-01 App Service API's date form: msal int()s expires_on, so this fails.
DATE_FORM_EXPIRES_ON = b'{"access_token": "t", "expires_on": "12/31/2030 10:00:00 PM +00:00"}'

# Variables that would make ManagedIdentityCredential pick another flavour than App Service.
_OTHER_FLAVOURS = ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT")


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentitySimulator]:
    """A running simulator, with the environment pointing the SDK at it."""
    with IdentitySimulator("id-secret") as simulator:
        for name in _OTHER_FLAVOURS:
            monkeypatch.delenv(name, raising=False)
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        yield simulator


def test_get_token_returns_the_simulators_token_for_the_arm_resource(
    idp: IdentitySimulator,
) -> None:
    with ManagedIdentityCredential() as credential:
        token = credential.get_token(ARM_SCOPE)

    assert token.token == idp.token_for(ARM_RESOURCE) == idp.token_for(ARM_SCOPE)
    assert token.expires_on == pytest.approx(time.time() + 3600, abs=5)


def test_the_sdk_request_is_what_app_service_expects(idp: IdentitySimulator) -> None:
    with ManagedIdentityCredential() as credential:
        credential.get_token(ARM_SCOPE)

    (request,) = idp.requests
    assert request.method == "GET"
    assert request.path == "/msi/token"
    assert request.query == {"api-version": API_VERSION, "resource": ARM_RESOURCE}
    assert request.headers["X-IDENTITY-HEADER"] == "id-secret"
    assert request.headers["Metadata"] == "true"
    assert request.headers["x-ms-client-request-id"]  # azure-core's RequestIdPolicy
    assert request.headers["User-Agent"].startswith("azsdk-python-identity/")
    assert request.client_id is None
    assert request.response_status == 200


def test_the_issued_token_opens_the_arm_simulator(idp: IdentitySimulator) -> None:
    with (
        ManagedIdentityCredential() as credential,
        ArmSimulator(expected_token=idp.token_for(ARM_SCOPE)) as arm,
        requests.Session() as http,
    ):
        arm.script("op-1", [Step.succeeded()])
        token = credential.get_token(ARM_SCOPE).token
        response = http.get(
            arm.status_url("op-1"), headers={"Authorization": f"Bearer {token}"}, timeout=5
        )

    assert response.status_code == 200


def test_a_second_get_token_is_served_from_the_credentials_cache(idp: IdentitySimulator) -> None:
    with ManagedIdentityCredential() as credential:
        first = credential.get_token(ARM_SCOPE)
        second = credential.get_token(ARM_SCOPE)
        info = credential.get_token_info(ARM_SCOPE)

    assert first.token == second.token == info.token
    assert idp.request_count() == 1
    assert idp.request_count(ARM_RESOURCE) == 1


def test_each_credential_object_has_its_own_cache(idp: IdentitySimulator) -> None:
    for _ in range(2):
        with ManagedIdentityCredential() as credential:
            credential.get_token(ARM_SCOPE)

    assert idp.request_count() == 2


def test_tokens_with_under_five_minutes_left_are_fetched_every_time(
    idp: IdentitySimulator,
) -> None:
    # msal treats a cached token with < 300 s left as expired.
    idp.token_lifetime = 200
    with ManagedIdentityCredential() as credential:
        credential.get_token(ARM_SCOPE)
        credential.get_token(ARM_SCOPE)

    assert idp.request_count() == 2


def test_long_lived_tokens_get_a_refresh_time_at_half_life(idp: IdentitySimulator) -> None:
    idp.token_lifetime = 7200
    with ManagedIdentityCredential() as credential:
        info = credential.get_token_info(ARM_SCOPE)

    assert info.refresh_on == pytest.approx(time.time() + 3600, abs=5)


def test_claims_bypass_the_cache(idp: IdentitySimulator) -> None:
    with ManagedIdentityCredential() as credential:
        credential.get_token(ARM_SCOPE)
        credential.get_token(ARM_SCOPE, claims='{"access_token":{"nbf":{"essential":true}}}')

    assert idp.request_count() == 2
    assert "claims" not in idp.requests[-1].query  # App Service gets no hint of it


@pytest.mark.parametrize(
    ("kwargs", "parameter", "value"),
    [
        ({"client_id": "uami-client"}, "client_id", "uami-client"),
        ({"identity_config": {"client_id": "uami-client"}}, "client_id", "uami-client"),
        ({"identity_config": {"object_id": "uami-object"}}, "object_id", "uami-object"),
        ({"identity_config": {"resource_id": "/subscriptions/s/uami"}}, "mi_res_id", None),
    ],
    ids=["client_id", "config-client_id", "object_id", "resource_id"],
)
def test_user_assigned_identity_selectors_reach_the_endpoint(
    idp: IdentitySimulator, kwargs: dict[str, object], parameter: str, value: str | None
) -> None:
    with ManagedIdentityCredential(**kwargs) as credential:  # type: ignore[arg-type]
        token = credential.get_token(ARM_SCOPE)

    (request,) = idp.requests
    sent = request.query[parameter]
    assert sent == (value or "/subscriptions/s/uami")
    assert {k: v for k, v in request.query.items() if k != parameter} == {
        "api-version": API_VERSION,
        "resource": ARM_RESOURCE,
    }
    assert token.token == idp.token_for(ARM_RESOURCE)  # same token for any identity
    if parameter == "client_id":
        assert request.client_id == "uami-client"


# -- failures --------------------------------------------------------------------------


def test_one_transient_failure_is_retried_by_azure_core(idp: IdentitySimulator) -> None:
    idp.fail_next(1, 500)
    with ManagedIdentityCredential() as credential:
        token = credential.get_token(ARM_SCOPE)

    assert token.token == idp.token_for(ARM_RESOURCE)
    assert [r.response_status for r in idp.requests] == [500, 200]


def test_a_failing_endpoint_raises_credential_unavailable_and_msal_replays_it(
    idp: IdentitySimulator,
) -> None:
    idp.fail_next(5, 503)
    with ManagedIdentityCredential(retry_total=0) as credential:
        with pytest.raises(CredentialUnavailableError) as first:
            credential.get_token(ARM_SCOPE)
        # msal keeps a 429/5xx answer for Retry-After (default 5 s) and replays it.
        with pytest.raises(CredentialUnavailableError):
            credential.get_token(ARM_SCOPE)

    assert isinstance(first.value, ClientAuthenticationError)
    assert "503" in str(first.value)
    assert idp.request_count() == 1


def test_a_wrong_identity_header_is_a_401_and_credential_unavailable(
    idp: IdentitySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    with ManagedIdentityCredential() as credential, pytest.raises(CredentialUnavailableError):
        credential.get_token(ARM_SCOPE)

    assert [r.response_status for r in idp.requests] == [401]  # 4xx is not retried


@pytest.mark.parametrize(
    ("status", "body", "content_type", "raised"),
    [
        (200, b"<html>oops", "application/json; charset=utf-8", DecodeError),
        (502, b"<html>bad gateway</html>", "text/html", json.JSONDecodeError),
        (200, DATE_FORM_EXPIRES_ON, "application/json", ValueError),
    ],
    ids=["non-json-labelled-json", "html-page", "date-form-expires_on"],
)
def test_malformed_answers_escape_as_non_authentication_errors(
    idp: IdentitySimulator,
    status: int,
    body: bytes,
    content_type: str,
    raised: type[Exception],
) -> None:
    # Not ClientAuthenticationError: a caller catching only that would crash on these.
    idp.fail_next(1, status, body=body, content_type=content_type)
    with ManagedIdentityCredential(retry_total=0) as credential, pytest.raises(raised) as caught:
        credential.get_token(ARM_SCOPE)

    assert not isinstance(caught.value, ClientAuthenticationError)


def test_a_hung_endpoint_surfaces_as_a_response_timeout(idp: IdentitySimulator) -> None:
    idp.set_delay(1.0)
    with (
        ManagedIdentityCredential(retry_total=0, read_timeout=0.2) as credential,
        pytest.raises(ServiceResponseError),
    ):
        credential.get_token(ARM_SCOPE)


def test_an_absent_endpoint_surfaces_as_a_request_error(idp: IdentitySimulator) -> None:
    idp.stop()
    with ManagedIdentityCredential(retry_total=0) as credential, pytest.raises(ServiceRequestError):
        credential.get_token(ARM_SCOPE)


# -- the endpoint's own checks (plain HTTP: the SDK always sends a valid request) ------


@pytest.mark.parametrize(
    ("path", "query", "headers", "status"),
    [
        ("/msi/token", {"api-version": API_VERSION, "resource": "r"}, {}, 400),
        ("/msi/token", {"api-version": "2017-09-01", "resource": "r"}, None, 400),
        ("/msi/token", {"api-version": API_VERSION}, None, 400),
        ("/elsewhere", {"api-version": API_VERSION, "resource": "r"}, None, 404),
        ("/msi/token", {"api-version": API_VERSION, "resource": "r"}, None, 200),
    ],
    ids=["no-header", "old-api-version", "no-resource", "wrong-path", "ok"],
)
def test_endpoint_validation(
    path: str, query: dict[str, str], headers: dict[str, str] | None, status: int
) -> None:
    with IdentitySimulator("s3cret") as idp, requests.Session() as http:
        response = http.get(
            idp.base_url + path,
            params=query,
            headers={"X-IDENTITY-HEADER": "s3cret"} if headers is None else headers,
            timeout=5,
        )

    assert response.status_code == status
    body = response.json()
    if status == 200:
        assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
        assert body["expires_on"].isdigit()  # epoch seconds, as a string
        assert body["token_type"] == "Bearer"
    else:
        assert body["statusCode"] == status
        assert body["message"]


def test_token_for_ignores_default_suffix_and_trailing_slash() -> None:
    tokens = {
        IdentitySimulator.token_for(r)
        for r in (ARM_SCOPE, ARM_RESOURCE, ARM_RESOURCE + "/", ARM_RESOURCE + "//.default")
    }

    assert len(tokens) == 1
    assert tokens != {IdentitySimulator.token_for("https://servicebus.azure.net")}


def test_environ_endpoint_and_clear() -> None:
    with IdentitySimulator("abc", path="/token") as idp:
        assert idp.environ() == {"IDENTITY_ENDPOINT": idp.endpoint, "IDENTITY_HEADER": "abc"}
        assert idp.endpoint.startswith("http://127.0.0.1:")
        assert idp.endpoint.endswith("/token")
        idp.fail_next(2)
        idp.clear()
        with requests.Session() as http:
            ok = http.get(
                idp.endpoint,
                params={"api-version": API_VERSION, "resource": "r"},
                headers={"X-IDENTITY-HEADER": "abc"},
                timeout=5,
            )

    assert ok.status_code == 200  # clear() dropped the pending failures


def test_cli_serves_tokens() -> None:
    command = [sys.executable, "-m", "emulators.identity", "--port", "0", "--secret", "cli"]

    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            endpoint_line = process.stdout.readline()
            endpoint = endpoint_line.strip().removeprefix("export IDENTITY_ENDPOINT=")
            with requests.Session() as http:
                response = http.get(
                    endpoint,
                    params={"api-version": API_VERSION, "resource": ARM_RESOURCE},
                    headers={"X-IDENTITY-HEADER": "cli"},
                    timeout=5,
                )
        finally:
            process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0

    assert banner.startswith("Managed identity simulator listening on http://127.0.0.1:")
    assert response.json()["access_token"] == IdentitySimulator.token_for(ARM_RESOURCE)
