"""The ARM operation-status simulator: ``ArmSimulator`` and its request handler.

This module owns the HTTP side: ``GET /subscriptions/{sub}/providers/{provider}/locations/
{location}/operationsStatus/{id}`` and any other ``/subscriptions/{sub}/...`` URL whose last
segment is a scripted operation id (other providers' ``Azure-AsyncOperation`` URLs). It
applies ARM's front-door checks in ARM's order (bearer token, read throttling,
api-version), answers from the operation's script (``playback``) and records every
request so tests can assert on what the product sent.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .bucket import ReadMeter
from .loopback import Headers, LoopbackServer, QuietHandler
from .playback import Progress, render
from .script import Step
from .wire import (
    JSON_CONTENT_TYPE,
    arm_error,
    bearer_problem,
    encode,
    new_guid,
    valid_api_version,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_LOCATION",
    "DEFAULT_PROVIDER",
    "DEFAULT_SUBSCRIPTION_ID",
    "SIM_TENANT_ID",
    "ArmSimulator",
    "RecordedRequest",
]

#: The subscription, location and api-version of the official example
#: (reference/OperationsStatusGet.example.json), used as defaults by ``status_url``.
DEFAULT_SUBSCRIPTION_ID = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
DEFAULT_LOCATION = "westus"
DEFAULT_PROVIDER = "Microsoft.Cache"
DEFAULT_API_VERSION = "2025-07-01"

#: Tenant named in the simulated ``WWW-Authenticate`` challenge (ARM names the caller's tenant).
SIM_TENANT_ID = "72f988bf-0000-4000-8000-00000000a11e"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    #: Last path segment, URL-decoded (None when the path has no segment).
    operation_id: str | None
    #: Wall-clock ``time.time()`` when the request line was parsed.
    received_at: float
    subscription_id: str | None = None
    #: HTTP status answered; None when the connection was dropped instead.
    response_status: int | None = None


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    delay: float = 0.0
    drop: bool = False
    drip: float = 0.0


class ArmSimulator(LoopbackServer):
    """ARM operation-status endpoints on loopback, answering from per-operation scripts.

    Checks run in ARM's order and do not consume script steps: bearer token (401), read
    throttle (429, only with ``read_budget``), api-version (400), then the operation's
    script (unscripted ids answer 404).
    """

    def __init__(
        self,
        expected_token: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        read_budget: int | None = None,
        refill_per_second: float = 25.0,
        supported_api_versions: Iterable[str] | None = None,
    ) -> None:
        """
        :param expected_token: the bearer token ARM accepts; None accepts any bearer token
            (a missing ``Authorization`` header is still a 401).
        :param read_budget: enables the per-subscription token bucket (ARM: 250 reads,
            refilled ``refill_per_second`` = 25/s); None never throttles.
        :param supported_api_versions: well-formed api-versions outside this set answer
            400 ``NoRegisteredProviderFound``, as ARM does; None accepts any well-formed one.
        """
        super().__init__(host, port)
        self.expected_token = expected_token
        self.read_budget = read_budget
        self.refill_per_second = refill_per_second
        self.supported_api_versions = (
            frozenset(supported_api_versions) if supported_api_versions is not None else None
        )
        self._scripts: dict[str, Progress] = {}
        self._requests: list[RecordedRequest] = []
        self._reads = ReadMeter()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _ArmHandler

    @property
    def endpoint(self) -> str:
        """ARM base URL, e.g. ``http://127.0.0.1:54321`` (the product's ``management`` host)."""
        return self.base_url

    # -- scripting ----------------------------------------------------------------------

    def script(self, operation_id: str, steps: Iterable[Step]) -> None:
        """Set (or replace, restarting from the first step) what ``operation_id`` answers."""
        script = tuple(steps)
        if not script:
            raise ValueError("a script needs at least one step")
        with self._lock:
            self._scripts[operation_id] = Progress(script, dt.datetime.now(dt.timezone.utc))

    def unscript(self, operation_id: str) -> None:
        """Forget an operation: it answers 404 from now on."""
        with self._lock:
            self._scripts.pop(operation_id, None)

    def status_url(
        self,
        operation_id: str,
        *,
        subscription_id: str = DEFAULT_SUBSCRIPTION_ID,
        location: str = DEFAULT_LOCATION,
        provider: str = DEFAULT_PROVIDER,
        api_version: str | None = DEFAULT_API_VERSION,
    ) -> str:
        """The operationsStatus URL for an operation on this simulator (parts URL-encoded)."""
        path = "/".join(
            [
                "/subscriptions",
                quote(subscription_id, safe=""),
                "providers",
                quote(provider, safe=""),
                "locations",
                quote(location, safe=""),
                "operationsStatus",
                quote(operation_id, safe=""),
            ]
        )
        query = "" if api_version is None else f"?api-version={quote(api_version, safe='')}"
        return f"{self.endpoint}{path}{query}"

    # -- observations -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, operation_id: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.operation_id == operation_id]

    def clear(self) -> None:
        """Forget recorded requests and the connection count (scripts and budgets stay)."""
        with self._lock:
            self._requests.clear()
        self._reset_connection_count()

    # -- request handling (called from handler threads) --------------------------------

    def _handle(self, method: str, raw_path: str, headers: Headers, received_at: float) -> _Reply:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        # Split before decoding so an encoded "/" stays inside its segment.
        segments = [unquote(s) for s in parts.path.split("/") if s]
        operation_id = segments[-1] if segments else None
        subscription_id = (
            segments[1] if len(segments) >= 2 and segments[0].lower() == "subscriptions" else None
        )
        location = _segment_after(segments, "locations")
        with self._lock:
            reply = self._decide(
                method, parts.path, query, headers, segments, subscription_id, location
            )
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=parts.path,
                    query=query,
                    headers=headers,
                    operation_id=operation_id,
                    received_at=received_at,
                    subscription_id=subscription_id,
                    response_status=None if reply.drop else reply.status,
                )
            )
        return reply

    def _decide(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Headers,
        segments: list[str],
        subscription_id: str | None,
        location: str | None,
    ) -> _Reply:
        base = {
            "x-ms-request-id": new_guid(),
            "x-ms-correlation-request-id": headers.get("x-ms-correlation-request-id") or new_guid(),
            "Content-Type": JSON_CONTENT_TYPE,
        }
        client_request_id = headers.get("x-ms-client-request-id")
        if client_request_id and headers.get("x-ms-return-client-request-id", "").lower() == "true":
            # ARM echoes the caller's id only when asked to, as here.
            base["x-ms-client-request-id"] = client_request_id

        def reply(status: int, body: Mapping[str, Any], **extra: str) -> _Reply:
            return _Reply(status, {**base, **extra}, encode(body))

        auth_error = bearer_problem(headers.get("Authorization"), self.expected_token)
        if auth_error is not None:
            code, message, description = auth_error
            if subscription_id is not None:
                base["x-ms-ratelimit-remaining-subscription-reads"] = str(
                    self._remaining_reads(subscription_id, time.monotonic())
                )
            challenge = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{SIM_TENANT_ID}", '
                f'error="invalid_token", error_description="{description}"'
            )
            return reply(401, arm_error(code, message), **{"WWW-Authenticate": challenge})

        if subscription_id is not None:
            allowed, remaining, wait = self._take_read(subscription_id, time.monotonic())
            base["x-ms-ratelimit-remaining-subscription-reads"] = str(remaining)
            if not allowed:
                return reply(
                    429,
                    arm_error(
                        "SubscriptionRequestsThrottled",
                        f"Number of 'read' requests for subscription '{subscription_id}' "
                        f"exceeded. Please try again after '{wait}' seconds after additional "
                        "tokens are available. Refer to https://aka.ms/arm-throttling for "
                        "additional information.",
                    ),
                    **{"Retry-After": str(wait)},
                )

        api_version = query.get("api-version", "")
        if not api_version:
            return reply(
                400,
                arm_error(
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                ),
            )
        if not valid_api_version(api_version):
            return reply(
                400,
                arm_error(
                    "InvalidApiVersionParameter",
                    f"The api-version '{api_version}' is invalid. The supported versions are "
                    f"'{DEFAULT_API_VERSION}'.",
                ),
            )
        if (
            self.supported_api_versions is not None
            and api_version not in self.supported_api_versions
        ):
            supported = ", ".join(sorted(self.supported_api_versions))
            return reply(
                400,
                arm_error(
                    "NoRegisteredProviderFound",
                    f"No registered resource provider found for location '{location}' and API "
                    f"version '{api_version}' for type 'locations/operationsStatus'. The "
                    f"supported api-versions are '{supported}'.",
                ),
            )

        operation_id = segments[-1] if segments else ""
        progress = self._scripts.get(operation_id) if subscription_id is not None else None
        if progress is None:
            return reply(
                404,
                arm_error("NotFound", f"The operation '{operation_id}' could not be found."),
            )
        if method != "GET":
            return reply(
                405,
                arm_error(
                    "HttpMethodNotAllowed",
                    f"The HTTP method '{method}' is not supported for this resource.",
                ),
            )

        step = progress.next_step(time.monotonic())
        context = {
            "operation_id": operation_id,
            "subscription_id": subscription_id or "",
            "location": location or "",
            "path": path,
        }
        if step.drop_connection:
            return _Reply(0, {}, b"", delay=step.delay, drop=True)
        status, body = render(step, progress, segments, context)
        return _Reply(status, {**base, **step.headers}, body, delay=step.delay, drip=step.drip)

    def _take_read(self, subscription_id: str, now: float) -> tuple[bool, int, int]:
        return self._reads.take(subscription_id, now, self.read_budget, self.refill_per_second)

    def _remaining_reads(self, subscription_id: str, now: float) -> int:
        return self._reads.remaining(subscription_id, now, self.read_budget, self.refill_per_second)


class _ArmHandler(QuietHandler):
    server_version = "ops-status-arm-simulator"

    def _serve(self) -> None:
        received_at = time.time()
        self.read_body()
        simulator = cast(ArmSimulator, self.owner)
        reply = simulator._handle(
            self.command, self.path, Headers(self.headers.items()), received_at
        )
        self.wait(reply.delay)
        if reply.drop:
            self.reset_connection()
            return
        self.send_reply(reply.status, reply.headers, reply.body, drip=reply.drip)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve


def _segment_after(segments: list[str], name: str) -> str | None:
    for index, segment in enumerate(segments[:-1]):
        if segment.lower() == name:
            return segments[index + 1]
    return None
