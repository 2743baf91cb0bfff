"""The process's one Azure credential, chosen by settings.

In Azure it is ``ManagedIdentityCredential`` (user-assigned when ``AZURE_CLIENT_ID`` is
set); for local development ``OPS_STATUS_CREDENTIAL=default`` selects
``DefaultAzureCredential`` (Azure CLI login, environment, ...). azure-identity caches
tokens inside the credential object, which is why there must be only one per process.
"""

from __future__ import annotations

from azure.core.credentials import TokenCredential

from ops_status.settings import Settings

__all__ = ["create_credential"]


def create_credential(settings: Settings) -> TokenCredential:
    """A new credential for ``settings``. Does no I/O: tokens are fetched on first use."""
    # Imported here: azure.identity pulls in msal and cryptography, which the cold start
    # of a process that never needs a token should not pay for.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.credential == "default":
        return DefaultAzureCredential(managed_identity_client_id=settings.client_id)
    if settings.client_id:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return ManagedIdentityCredential()
