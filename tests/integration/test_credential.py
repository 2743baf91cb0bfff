"""The process credential against the real managed-identity endpoint: one token per scope."""

from __future__ import annotations

import threading
import time

import pytest

from emulators.identity import IdentitySimulator
from ops_status.credential import IDENTITY_RETRIES, create_credential, identity_call_bound
from ops_status.settings import load_settings
from tests.conftest import BASE_ENVIRONMENT


def test_concurrent_cold_start_costs_one_token_request_per_scope(
    identity: IdentitySimulator,
) -> None:
    credential = create_credential(load_settings(BASE_ENVIRONMENT))
    identity.set_delay(0.3)  # long enough for every thread to miss the cache at once
    scopes = ["https://management.azure.com/.default", "https://servicebus.azure.net//.default"]
    tokens: list[str] = []

    def fetch(scope: str) -> None:
        tokens.append(credential.get_token(scope).token)

    threads = [threading.Thread(target=fetch, args=(scopes[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 16
    assert identity.request_count() == 2
    assert {identity.token_for(scope) for scope in scopes} == set(tokens)


def test_user_assigned_client_id_reaches_the_identity_endpoint(identity: IdentitySimulator) -> None:
    settings = load_settings(
        {**BASE_ENVIRONMENT, "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}
    )

    create_credential(settings).get_token("https://management.azure.com/.default")

    [request] = identity.requests
    assert request.client_id == "11111111-2222-3333-4444-555555555555"


def test_waiters_share_one_slow_failure_instead_of_repeating_it_in_turn(
    identity: IdentitySimulator,
) -> None:
    # Given an identity endpoint that hangs past the read timeout on every request
    settings = load_settings(
        {
            **BASE_ENVIRONMENT,
            "OPS_STATUS_HTTP_CONNECT_TIMEOUT": "1",
            "OPS_STATUS_HTTP_READ_TIMEOUT": "0.5",
        }
    )
    credential = create_credential(settings)
    identity.set_delay(2.0)
    failed_after: list[float] = []
    start = time.monotonic()

    def fetch() -> None:
        try:
            credential.get_token("https://management.azure.com/.default")
        except Exception:  # noqa: BLE001 - the failure itself is what is measured
            failed_after.append(time.monotonic() - start)

    # When four handlers ask for a token at once
    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    identity.set_delay(0.0)

    # Then all four fail together, after one attempt's worth of requests, not four
    assert len(failed_after) == 4
    assert max(failed_after) - min(failed_after) < 0.5
    assert identity.request_count() == 1 + IDENTITY_RETRIES
    assert max(failed_after) < identity_call_bound(settings)


@pytest.mark.parametrize(("connect", "read"), [("0.1", "0.1"), ("5", "30"), ("120", "300")])
def test_one_identity_call_is_bounded_well_under_the_function_timeout(
    connect: str, read: str
) -> None:
    # functionTimeout is 300 s (host.json); a token request must leave room for the ARM
    # read and the send that follow it, whatever the (ARM) timeout settings say.
    settings = load_settings(
        {
            **BASE_ENVIRONMENT,
            "OPS_STATUS_HTTP_CONNECT_TIMEOUT": connect,
            "OPS_STATUS_HTTP_READ_TIMEOUT": read,
        }
    )

    assert identity_call_bound(settings) <= 15.0


def test_a_retry_after_from_the_identity_endpoint_does_not_hold_the_call(
    identity: IdentitySimulator,
) -> None:
    # azure-core's RetryPolicy sleeps for any Retry-After, uncapped: with retries inside the
    # token call, a 503 carrying Retry-After: 300 held every handler for five minutes.
    credential = create_credential(load_settings(BASE_ENVIRONMENT))
    identity.fail_next(1, status=503, retry_after="300")
    start = time.monotonic()

    with pytest.raises(Exception, match="503"):
        credential.get_token("https://management.azure.com/.default")

    assert time.monotonic() - start < 5
