"""The process's one Azure credential, chosen by settings.

In Azure it is ``ManagedIdentityCredential`` (user-assigned when ``AZURE_CLIENT_ID`` is
set); for local development ``OPS_STATUS_CREDENTIAL=default`` selects
``DefaultAzureCredential`` (Azure CLI login, environment, ...). azure-identity caches
tokens inside the credential object, which is why there must be only one per process.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential

from ops_status.settings import Settings

__all__ = ["SerializedCredential", "create_credential"]


class SerializedCredential:
    """Lets one caller at a time (per scope) ask the inner credential for a token.

    azure-identity caches tokens, but when several threads miss the cache at once
    (the worker's receivers starting together, the host's thread pool on the first
    messages) each one asks the identity endpoint. Serializing the calls turns that
    burst into one request per scope; later calls are cache hits and the lock costs
    microseconds.
    """

    def __init__(self, inner: TokenCredential) -> None:
        self._inner = inner
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, ...], threading.Lock] = {}

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        with self._guard:
            lock = self._locks.setdefault(scopes, threading.Lock())
        with lock:
            return self._inner.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


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
    inner: TokenCredential
    if settings.credential == "default":
        inner = DefaultAzureCredential(managed_identity_client_id=settings.client_id, **transport)
    else:
        inner = ManagedIdentityCredential(client_id=settings.client_id, **transport)
    return SerializedCredential(inner)
