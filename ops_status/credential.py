"""The process's one Azure credential, chosen by settings.

In Azure it is ``ManagedIdentityCredential`` (user-assigned when ``AZURE_CLIENT_ID`` is
set); for local development ``OPS_STATUS_CREDENTIAL=default`` selects
``DefaultAzureCredential`` (Azure CLI login, environment, ...). azure-identity caches
tokens inside the credential object, which is why there must be only one per process.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials import TokenCredential

from ops_status.settings import Settings

__all__ = ["create_credential"]


def create_credential(settings: Settings) -> TokenCredential:
    """A new credential for ``settings``. Does no I/O: tokens are fetched on first use."""
    # Imported here: azure.identity pulls in msal and cryptography, which the cold start
    # of a process that never needs a token should not pay for.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    # azure-core's defaults (300 s connect and read, retried) would let a hung identity
    # endpoint outlast the function timeout; ours match the ARM client's.
    transport: dict[str, Any] = {
        "connection_timeout": settings.http_connect_timeout,
        "read_timeout": settings.http_read_timeout,
        "retry_total": 3,
    }
    if settings.credential == "default":
        return DefaultAzureCredential(managed_identity_client_id=settings.client_id, **transport)
    return ManagedIdentityCredential(client_id=settings.client_id, **transport)
