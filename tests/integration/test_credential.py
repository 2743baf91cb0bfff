"""The process credential against the real managed-identity endpoint: one token per scope."""

from __future__ import annotations

import threading

from emulators.identity import IdentitySimulator
from ops_status.credential import create_credential
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
