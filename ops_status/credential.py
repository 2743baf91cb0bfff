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

__all__ = [
    "IDENTITY_CONNECT_TIMEOUT",
    "IDENTITY_READ_TIMEOUT",
    "IDENTITY_RETRIES",
    "CoalescingCredential",
    "create_credential",
    "identity_call_bound",
]

# Bounds on one token request to the identity endpoint. azure-core's defaults (300 s
# connect and read, 3 retries) let one hung endpoint hold a handler for 20 minutes.
# The ARM timeouts apply, capped at these: one request then takes at most
# (1 + IDENTITY_RETRIES) x (connect + read) plus azure-core's back-off (0.8 s, 1.6 s):
# 3 x (5 + 10) + 2.4 = 47.4 s, far inside functionTimeout (300 s), whatever
# OPS_STATUS_HTTP_*_TIMEOUT say. See ``identity_call_bound``.
IDENTITY_CONNECT_TIMEOUT = 5.0
IDENTITY_READ_TIMEOUT = 10.0
IDENTITY_RETRIES = 2
_RETRY_BACKOFF = (0.8, 1.6)


def identity_call_bound(settings: Settings) -> float:
    """Longest one ``get_token`` call can take against a hung identity endpoint, in seconds."""
    connect, read = _identity_timeouts(settings)
    return (1 + IDENTITY_RETRIES) * (connect + read) + sum(_RETRY_BACKOFF[:IDENTITY_RETRIES])


def _identity_timeouts(settings: Settings) -> tuple[float, float]:
    return (
        min(settings.http_connect_timeout, IDENTITY_CONNECT_TIMEOUT),
        min(settings.http_read_timeout, IDENTITY_READ_TIMEOUT),
    )


class _Fetch:
    """One in-flight token request and, once it ends, its result."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: AccessToken | None = None
        self.error: BaseException | None = None


class CoalescingCredential:
    """Concurrent requests for the same token share one call to the inner credential.

    azure-identity caches tokens, but when several threads miss the cache at once (the
    worker's receivers starting together, the host's thread pool on the first messages,
    every handler while the identity endpoint is down) each would ask the endpoint, and
    behind a lock each would repeat the whole slow failure in turn (four waiters failed
    at 8.8, 17.7, 26.5 and 35.3 s). Here the first caller fetches; the others wait for
    *its* result, token or error. Later calls start a new fetch (mostly a cache hit).
    """

    def __init__(self, inner: TokenCredential) -> None:
        self._inner = inner
        self._guard = threading.Lock()
        self._fetches: dict[tuple[Any, ...], _Fetch] = {}

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        key = (scopes, claims, tenant_id, enable_cae)
        with self._guard:
            fetch = self._fetches.get(key)
            leader = fetch is None
            if fetch is None:
                fetch = self._fetches[key] = _Fetch()
        if not leader:
            fetch.done.wait()
            if fetch.error is not None:
                raise fetch.error
            assert fetch.token is not None
            return fetch.token
        try:
            fetch.token = self._inner.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
            return fetch.token
        except BaseException as exc:
            fetch.error = exc
            raise
        finally:
            with self._guard:
                del self._fetches[key]
            fetch.done.set()

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


def create_credential(settings: Settings) -> TokenCredential:
    """A new credential for ``settings``. Does no I/O: tokens are fetched on first use."""
    # Imported here: azure.identity pulls in msal and cryptography, which the cold start
    # of a process that never needs a token should not pay for.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    connect, read = _identity_timeouts(settings)
    transport: dict[str, Any] = {
        "connection_timeout": connect,
        "read_timeout": read,
        "retry_total": IDENTITY_RETRIES,
    }
    inner: TokenCredential
    if settings.credential == "default":
        inner = DefaultAzureCredential(managed_identity_client_id=settings.client_id, **transport)
    else:
        inner = ManagedIdentityCredential(client_id=settings.client_id, **transport)
    return CoalescingCredential(inner)
