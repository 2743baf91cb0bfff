"""Real local peers for integration tests: the ARM simulator and the managed-identity
endpoint (App Service kind), reached through the real ``requests`` and azure-identity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulators.arm import ArmSimulator
from emulators.identity import IdentitySimulator
from ops_status.arm import ArmClient
from ops_status.credential import create_credential
from ops_status.settings import Settings, load_settings
from tests.conftest import BASE_ENVIRONMENT

SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"


@dataclass
class ArmStack:
    """An ARM simulator that only accepts the token the identity endpoint issues."""

    arm: ArmSimulator
    identity: IdentitySimulator
    settings: Settings

    def client(self, **options: float) -> ArmClient:
        """A fresh ArmClient with a fresh ManagedIdentityCredential (its own token cache)."""
        return ArmClient(self.settings.arm_endpoint, create_credential(self.settings), **options)

    def parts(self, operation_id: str, **extra: object) -> dict[str, object]:
        return {
            "subscriptionId": SUBSCRIPTION,
            "location": "West US",
            "operationId": operation_id,
            **extra,
        }


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentitySimulator]:
    with IdentitySimulator() as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        # Nothing from the developer's machine may leak into the credential chain.
        for name in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)
        yield simulator


@pytest.fixture
def stack(identity: IdentitySimulator) -> Iterator[ArmStack]:
    with ArmSimulator() as arm:
        settings = load_settings(
            BASE_ENVIRONMENT,
            OPS_STATUS_ARM_ENDPOINT=arm.endpoint,
            OPS_STATUS_HTTP_READ_TIMEOUT="1",
            OPS_STATUS_HTTP_CONNECT_TIMEOUT="1",
        )
        arm.expected_token = identity.token_for(settings.arm_scope)
        yield ArmStack(arm, identity, settings)
