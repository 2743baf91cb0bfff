"""The App Service / Azure Functions managed-identity token endpoint, simulated on loopback.

This module owns the local stand-in for the endpoint a Function App's managed identity
is reached through: ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``. With those two variables
set (and no ``IDENTITY_SERVER_THUMBPRINT``), azure-identity's ``ManagedIdentityCredential``
picks its App Service flavour, which in azure-identity 1.27 delegates to msal's
``ManagedIdentityClient`` (msal 1.39, ``_obtain_token_on_app_service``). What that code
sends, and reads back, is what this simulator checks and answers:

* ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource={resource}`` plus one of
  ``client_id`` / ``object_id`` / ``mi_res_id`` for a user-assigned identity; headers
  ``X-IDENTITY-HEADER: {IDENTITY_HEADER}`` and ``Metadata: true``.
* The answer must be JSON with ``access_token`` and ``expires_on`` (epoch seconds; msal does
  ``int(expires_on)``, so a numeric string or an integer, never a date string); ``resource``
  and ``token_type`` are read when present. Anything else becomes an error built from
  the body's ``statusCode`` and ``message`` fields, which is the shape errors take here.

Error statuses for a bad request (400 missing ``X-IDENTITY-HEADER``, 401 wrong value, 400
wrong api-version or no resource) are this simulator's choice: the SDK treats every
non-token answer alike, and App Service's exact codes for these are not documented.

Tokens are deterministic per resource (``token_for``) so tests can hand the same value to
``emulators.arm.ArmSimulator(expected_token=...)``. Standard library only. Never deployed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from emulators.arm import Headers, LoopbackServer, QuietHandler

#: The only api-version azure-identity/msal send to this endpoint flavour.
API_VERSION = "2019-08-01"

#: Client id reported for the system-assigned identity (App Service echoes ``client_id``).
SYSTEM_ASSIGNED_CLIENT_ID = "5e29463d-71da-4fe0-8e69-999b57db23b0"

_JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    body: bytes | None
    content_type: str


@dataclass(frozen=True)
class TokenRequest:
    """One request the token endpoint received."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    #: ``resource`` query parameter as sent (azure-identity strips ``/.default`` from the scope).
    resource: str | None
    #: User-assigned identity selectors (None for the system-assigned identity).
    client_id: str | None
    object_id: str | None
    mi_res_id: str | None
    api_version: str | None
    #: Wall-clock ``time.time()`` when the request was parsed.
    received_at: float
    response_status: int = 0


class IdentitySimulator(LoopbackServer):
    """App Service managed-identity endpoint: validates like App Service, issues fake tokens."""

    def __init__(
        self,
        header_secret: str = "id-secret",
        token_lifetime: int = 3600,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/msi/token",
    ) -> None:
        """
        :param header_secret: the value of ``IDENTITY_HEADER`` the endpoint insists on.
        :param token_lifetime: seconds until ``expires_on``. msal treats a cached token with
            under 5 minutes left as expired, so lifetimes of 300 s or less are fetched anew
            on every ``get_token``; 7200 s or more get ``refresh_in`` = half the lifetime.
        """
        super().__init__(host, port)
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        self.header_secret = header_secret
        self.token_lifetime = token_lifetime
        self.path = path
        self._requests: list[TokenRequest] = []
        self._failures: list[_Failure] = []
        self._outage: tuple[float, int] | None = None  # (until, as time.time(); status)
        self._delay = 0.0

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _IdentityHandler

    @property
    def endpoint(self) -> str:
        """The value for ``IDENTITY_ENDPOINT``, e.g. ``http://127.0.0.1:54321/msi/token``."""
        return self.base_url + self.path

    def environ(self) -> dict[str, str]:
        """The variables that make ``ManagedIdentityCredential`` use this endpoint."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header_secret}

    @staticmethod
    def token_for(resource: str) -> str:
        """The token issued for ``resource`` (a scope ending in ``/.default`` is accepted too).

        A trailing ``/`` is ignored: ARM accepts tokens for both audience spellings, so
        ``https://management.azure.com`` and ``https://management.azure.com/`` must give a
        token that one ``ArmSimulator(expected_token=...)`` accepts.
        """
        if resource.endswith("/.default"):
            resource = resource[: -len("/.default")]
        digest = hashlib.sha256(resource.rstrip("/").encode("utf-8")).hexdigest()
        return "sim-" + digest[:16]

    # -- fault injection ---------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: str | None = None,
        body: bytes | None = None,
        content_type: str = _JSON,
    ) -> None:
        """The next ``n`` well-formed token requests answer ``status`` with an App Service
        error body (``{"statusCode", "message"}``), or with ``body`` verbatim when given.

        Note what sits between this and the product (azure-identity 1.27 defaults):
        azure-core's RetryPolicy retries 408, 429, 500, 502, 503 and 504 (and any status
        carrying ``Retry-After``) 3 times (``retry_status``), after 0, 1.6 and 3.2 s; then
        msal remembers a final 429/5xx answer for ``Retry-After`` seconds (5 by default)
        and replays it to later calls without contacting the endpoint.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        with self._lock:
            self._failures.extend([_Failure(status, retry_after, body, content_type)] * n)

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every well-formed token request with ``status`` for the next ``seconds``
        of real time: an outage with a duration, whatever the number of retries."""
        with self._lock:
            self._outage = (time.time() + seconds, status)

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering every request (0 to stop)."""
        if seconds < 0:
            raise ValueError("delay must not be negative")
        with self._lock:
            self._delay = seconds

    # -- observations ------------------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def request_count(self, resource: str | None = None) -> int:
        """Requests received, optionally only those for ``resource`` (exact match)."""
        with self._lock:
            return sum(1 for r in self._requests if resource is None or r.resource == resource)

    def clear(self) -> None:
        """Forget recorded requests, pending failures and the connection count."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._outage = None
        self._reset_connection_count()

    # -- request handling (called from handler threads) -------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: Headers, received_at: float
    ) -> tuple[int, dict[str, str], bytes, float]:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            status, extra, body = self._decide(method, parts.path, query, headers, received_at)
            self._requests.append(
                TokenRequest(
                    method=method,
                    path=parts.path,
                    query=query,
                    headers=headers,
                    resource=query.get("resource"),
                    client_id=query.get("client_id"),
                    # App Service documents principal_id; msal sends object_id. Record either.
                    object_id=query.get("object_id") or query.get("principal_id"),
                    mi_res_id=query.get("mi_res_id"),
                    api_version=query.get("api-version"),
                    received_at=received_at,
                    response_status=status,
                )
            )
            delay = self._delay
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return status, {"Content-Type": _JSON, **extra}, raw, delay

    def _decide(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Headers,
        now: float,
    ) -> tuple[int, dict[str, str], dict[str, Any] | bytes]:
        def error(status: int, message: str) -> tuple[int, dict[str, str], dict[str, Any]]:
            # msal turns a non-token body into "({statusCode}, {message})" in its error text.
            return status, {}, {"statusCode": status, "message": message}

        if path.rstrip("/") != self.path.rstrip("/"):
            return error(404, f"No token endpoint at {path}.")
        if method != "GET":
            return error(405, f"The token endpoint does not support {method}.")
        secret = headers.get("X-IDENTITY-HEADER")
        if secret is None:
            return error(400, "The request is missing the X-IDENTITY-HEADER header.")
        if secret != self.header_secret:
            return error(401, "The X-IDENTITY-HEADER value is not valid.")
        api_version = query.get("api-version")
        if api_version != API_VERSION:
            return error(
                400,
                f"The api-version '{api_version}' is not supported; this endpoint answers "
                f"'{API_VERSION}'.",
            )
        resource = query.get("resource")
        if not resource:
            return error(400, "The 'resource' query parameter is required.")
        if self._outage is not None and now < self._outage[0]:
            return error(self._outage[1], "Simulated managed identity endpoint outage.")
        if self._failures:
            failure = self._failures.pop(0)
            status, extra, body = error(
                failure.status, "Simulated managed identity endpoint failure."
            )
            extra["Content-Type"] = failure.content_type
            if failure.retry_after is not None:
                extra["Retry-After"] = failure.retry_after
            return status, extra, failure.body if failure.body is not None else body
        return (
            200,
            {},
            {
                "access_token": self.token_for(resource),
                # A string, as App Service sends it; msal int()s it.
                "expires_on": str(int(now) + self.token_lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": query.get("client_id") or SYSTEM_ASSIGNED_CLIENT_ID,
            },
        )


class _IdentityHandler(QuietHandler):
    server_version = "ops-status-identity-simulator"

    def _serve(self) -> None:
        received_at = time.time()
        self.read_body()
        simulator = cast(IdentitySimulator, self.owner)
        status, headers, body, delay = simulator._handle(
            self.command, self.path, Headers(self.headers.items()), received_at
        )
        self.wait(delay)
        self.send_reply(status, headers, body)

    do_GET = _serve
    do_POST = _serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.identity",
        description="Serve an App Service managed-identity token endpoint on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--secret", default="id-secret", help="the IDENTITY_HEADER value")
    parser.add_argument("--lifetime", type=int, default=3600, help="token lifetime, seconds")
    args = parser.parse_args(argv)

    simulator = IdentitySimulator(
        args.secret, args.lifetime, host=args.host, port=args.port
    ).start()
    # The CLI talks to a person at a terminal; the library itself only logs.
    print(f"Managed identity simulator listening on {simulator.base_url}", flush=True)  # noqa: T201
    for name, value in simulator.environ().items():
        print(f"  export {name}={value}", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
