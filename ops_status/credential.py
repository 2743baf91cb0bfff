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
from azure.core.exceptions import ClientAuthenticationError

from ops_status.settings import IdentitySettings

__all__ = [
    "IDENTITY_CONNECT_TIMEOUT",
    "IDENTITY_READ_TIMEOUT",
    "IDENTITY_RETRIES",
    "CoalescingCredential",
    "create_credential",
    "identity_call_bound",
]

# Bounds on one token request to the identity endpoint. azure-core's defaults (300 s
# connect and read, 3 retries, and a sleep for whatever Retry-After the endpoint sends)
# let one hung or throttling endpoint hold a handler past functionTimeout. So: the ARM
# timeouts, capped at these, and no retries inside the call (azure-core's RetryPolicy
# would sleep an uncapped Retry-After): a failed token is a failed read, which the poll
# back-off retries anyway. One request takes at most connect + read = 5 + 10 = 15 s,
# whatever OPS_STATUS_HTTP_*_TIMEOUT say. See ``identity_call_bound``.
IDENTITY_CONNECT_TIMEOUT = 5.0
IDENTITY_READ_TIMEOUT = 10.0
IDENTITY_RETRIES = 0


def identity_call_bound(settings: IdentitySettings) -> float:
    """Longest one ``get_token`` call can take against a hung identity endpoint, in seconds."""
    connect, read = _identity_timeouts(settings)
    return (1 + IDENTITY_RETRIES) * (connect + read)


def _identity_timeouts(settings: IdentitySettings) -> tuple[float, float]:
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

    def __init__(self, inner: TokenCredential, *, wait_limit: float = 60.0) -> None:
        self._inner = inner
        self._wait_limit = wait_limit
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
            # The leader's call is bounded by its transport timeouts; this bound only
            # guards against an inner credential that ignores them.
            if not fetch.done.wait(self._wait_limit):
                raise ClientAuthenticationError(
                    f"no token: the shared request did not end within {self._wait_limit:g} s"
                )
            if fetch.error is not None:
                # A new error per waiter: re-raising one object from many threads would
                # pile every waiter's traceback onto it.
                raise ClientAuthenticationError(
                    f"no token: {type(fetch.error).__name__}: {fetch.error}"
                ) from fetch.error
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


def create_credential(settings: IdentitySettings) -> TokenCredential:
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
    return CoalescingCredential(inner, wait_limit=identity_call_bound(settings) + 5.0)
