"""Azure Resource Manager async-operation status, simulated on loopback.

This module owns the local stand-in for ARM's operation-status endpoints:
``GET /subscriptions/{sub}/providers/{provider}/locations/{location}/operationsStatus/{id}``
and any other ``/subscriptions/{sub}/...`` URL whose last segment is a scripted operation
id (other providers' ``Azure-AsyncOperation`` URLs). Tests script what each operation
answers poll by poll (``Step``), and the simulator answers with ARM-shaped bodies and
headers, applies ARM's front-door checks (bearer token, api-version, read throttling)
and records every request so tests can assert on what the product sent.

It also holds ``LoopbackServer``, the small threaded-HTTP scaffolding shared with
``emulators.identity`` (start/stop, connection counting, loopback-only binding).

Standard library only: it must run anywhere the tests run. Never deployed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import math
import re
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

_log = logging.getLogger(__name__)

#: The subscription, location and api-version of the official example
#: (reference/OperationsStatusGet.example.json), used as defaults by ``status_url``.
DEFAULT_SUBSCRIPTION_ID = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
DEFAULT_LOCATION = "westus"
DEFAULT_PROVIDER = "Microsoft.Cache"
DEFAULT_API_VERSION = "2025-07-01"

#: Tenant named in the simulated ``WWW-Authenticate`` challenge (ARM names the caller's tenant).
SIM_TENANT_ID = "72f988bf-0000-4000-8000-00000000a11e"

#: Without a token bucket the remaining-reads header counts down from here; 11999 is the
#: value ARM historically reported for its hourly read quota, so clients that log it see
#: something familiar and tests can still see it decrease.
_UNMETERED_READS = 11999

_JSON = "application/json; charset=utf-8"

# ARM's date-form api-version, with the suffixes ARM uses for non-GA versions.
_API_VERSION_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(-(preview|privatepreview|alpha|beta))?$")


# --------------------------------------------------------------------------------------
# Shared scaffolding (also used by emulators.identity)
# --------------------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive view of HTTP headers (repeated headers joined by ", ")."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                original, previous = self._items[key]
                self._items[key] = (original, f"{previous}, {value}")
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class _Server(ThreadingHTTPServer):
    # Handler threads must not keep a test process alive, and a stuck keep-alive
    # connection must not make stop() block: LoopbackServer closes them itself.
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: LoopbackServer,
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a reverse DNS lookup that can
        # stall for seconds in sandboxes); nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Called once per accepted TCP connection (not per HTTP request), which is
        # what lets tests tell keep-alive reuse from a new connection per poll.
        self.owner._connection_opened(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._connection_closed(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or reset are part of the scenarios under test; the
        # default handler would print a traceback to stderr for each of them.
        _log.debug("error while serving %s", client_address, exc_info=True)


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler base: HTTP/1.1 keep-alive, logging instead of stderr."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per response on Linux), which would swamp test times.
    disable_nagle_algorithm = True
    server_version = "ops-status-simulator"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    @property
    def owner(self) -> LoopbackServer:
        return cast(_Server, self.server).owner

    def read_body(self) -> bytes:
        # With keep-alive an unread body would be parsed as the next request.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_reply(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        drip: float = 0.0,
        drip_chunk: int = 16,
    ) -> None:
        """Write one complete response; a client that has gone away is not an error here.

        With ``drip`` the headers go out at once and the body follows in ``drip_chunk``-byte
        pieces ``drip`` seconds apart: a peer that never trips a per-read timeout.
        """
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if drip > 0:
                self.wfile.flush()
                for start in range(0, len(body), max(1, drip_chunk)):
                    self.wait(drip)
                    self.wfile.write(body[start : start + max(1, drip_chunk)])
                    self.wfile.flush()
            else:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            _log.debug("client went away before the response was written", exc_info=True)
            self.close_connection = True

    def reset_connection(self) -> None:
        """Abort the TCP connection with a RST, without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset by
            # peer" (or a remote disconnect), as when a gateway drops the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The socket only really closes once rfile (a makefile() reference) is closed.
            self.rfile.close()
            self.connection.close()

    def wait(self, seconds: float) -> None:
        # Interruptible, so stop() does not wait for a scripted delay to run out.
        if seconds > 0:
            self.owner._stopping.wait(seconds)


_ServerT = TypeVar("_ServerT", bound="LoopbackServer")


class LoopbackServer:
    """A threaded HTTP/1.1 server bound to a loopback address, started and stopped by tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        _require_loopback(host)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._connections_opened = 0

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------

    def start(self: _ServerT) -> _ServerT:
        """Bind and serve in a background thread. Returns self."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), self._handler_class(), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits up to one poll interval for the accept loop to notice.
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("%s listening on %s", type(self).__name__, self.base_url)
        return self

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections and release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        # Without this a pooled keep-alive connection would still be served by its
        # handler thread after stop(), which hides "the peer went away" from tests.
        with self._lock:
            open_sockets = list(self._open)
            self._open.clear()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self: _ServerT) -> _ServerT:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- connection accounting ---------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (or the last ``clear()``)."""
        with self._lock:
            return self._connections_opened

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections_opened += 1
            self._open.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _reset_connection_count(self) -> None:
        with self._lock:
            self._connections_opened = 0


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        # These peers accept any client and hand out fake credentials: never expose them.
        raise ValueError(f"simulators bind to loopback addresses only, not {host!r}")


def new_guid() -> str:
    return str(uuid.uuid4())


def arm_timestamp(moment: dt.datetime) -> str:
    """ARM's example form, e.g. ``2017-01-01T13:13:13.933Z`` (UTC, milliseconds)."""
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def arm_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """ARM's error response envelope: ``{"error": {"code", "message", ...}}``."""
    return {"error": {"code": code, "message": message, **extra}}


# --------------------------------------------------------------------------------------
# Scripts
# --------------------------------------------------------------------------------------

#: Step kinds whose body is an OperationStatus (the rest carry an ARM error body or raw bytes).
_STATUS_KINDS = frozenset({"running", "succeeded", "failed", "canceled", "no_status"})
_TERMINAL_KINDS = frozenset({"succeeded", "failed", "canceled"})

_SERVER_ERROR_CODES = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def default_failure_error() -> dict[str, Any]:
    """A realistic Microsoft.Cache failure, with every field of ARM's ErrorDetail filled."""
    return {
        "code": "ResourceOperationFailure",
        "message": "The resource operation completed with terminal provisioning state 'Failed'.",
        "target": "Microsoft.Cache/redisEnterprise/ops-status-demo",
        "details": [
            {
                "code": "QuotaExceeded",
                "message": (
                    "Operation could not be completed as it results in exceeding approved "
                    "quota for SKU 'Balanced_B5' in region 'westus'. Current limit: 10, "
                    "current usage: 10, requested: 1."
                ),
                "target": "sku",
                "details": [],
                "additionalInfo": [],
            }
        ],
        "additionalInfo": [
            {
                "type": "QuotaDetails",
                "info": {"region": "westus", "sku": "Balanced_B5", "limit": 10, "usage": 10},
            }
        ],
    }


@dataclass(frozen=True)
class Step:
    """One answer in an operation's script.

    Build steps with the classmethods; every constructor takes ``repeat`` (serve this step
    for that many polls before moving on) and ``delay`` (seconds to wait before answering,
    for client-timeout tests); the OperationStatus ones also take ``for_seconds`` (stay on
    this step for that long after it is first served instead of a poll count: for
    standalone demos). The last step of a script repeats forever. Anything else (e.g.
    ``drip``, or ``drop_connection`` on any step) via ``step.replace(...)``.
    """

    kind: str
    http_status: int = 200
    #: Value of the body's ``status`` field for OperationStatus kinds.
    status: str | None = None
    percent_complete: float | None = None
    #: ARM ErrorDetail (``code``, ``message``, ...) for failed steps and error responses.
    #: Messages may use ``{operation_id}``, ``{subscription_id}``, ``{location}``, ``{path}``.
    error: Mapping[str, Any] | None = None
    #: Failed steps: ``error.error.code`` (ErrorResponse, as the Microsoft.Cache spec
    #: declares) when True, ``error.code`` (ARM RPC) when False.
    nested: bool = True
    #: Raw body (bytes, or a JSON-serialisable mapping) for ``raw``/``malformed`` steps.
    body: bytes | Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    repeat: int = 1
    delay: float = 0.0
    drop_connection: bool = False
    for_seconds: float | None = None
    #: Seconds between 16-byte pieces of the body (headers go out at once): a slow drip
    #: that no per-read timeout catches. Set with ``step.replace(drip=0.5)``.
    drip: float = 0.0

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError("repeat must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.for_seconds is not None and self.for_seconds < 0:
            raise ValueError("for_seconds must not be negative")
        if self.drip < 0:
            raise ValueError("drip must not be negative")

    def replace(self, **changes: Any) -> Step:
        """A copy with some fields changed, e.g. ``Step.succeeded().replace(delay=2)``."""
        return dataclasses.replace(self, **changes)

    @property
    def terminal(self) -> bool:
        return self.kind in _TERMINAL_KINDS

    # -- OperationStatus bodies (HTTP 200) --------------------------------------------

    @classmethod
    def running(
        cls,
        status: str = "Running",
        percent_complete: float | None = None,
        *,
        retry_after: str | None = None,
        repeat: int = 1,
        delay: float = 0.0,
        for_seconds: float | None = None,
    ) -> Step:
        """Still running: any status other than Succeeded/Failed/Canceled (ARM RPC)."""
        return cls(
            "running",
            status=status,
            percent_complete=percent_complete,
            headers=_retry_after(retry_after),
            repeat=repeat,
            delay=delay,
            for_seconds=for_seconds,
        )

    @classmethod
    def succeeded(
        cls,
        status: str = "Succeeded",
        *,
        repeat: int = 1,
        delay: float = 0.0,
        for_seconds: float | None = None,
    ) -> Step:
        return cls("succeeded", status=status, repeat=repeat, delay=delay, for_seconds=for_seconds)

    @classmethod
    def failed(
        cls,
        error: Mapping[str, Any] | None = None,
        nested: bool = True,
        status: str = "Failed",
        *,
        repeat: int = 1,
        delay: float = 0.0,
        for_seconds: float | None = None,
    ) -> Step:
        """Terminal failure carrying ``error`` (default: ``default_failure_error()``)."""
        return cls(
            "failed",
            status=status,
            error=error if error is not None else default_failure_error(),
            nested=nested,
            repeat=repeat,
            delay=delay,
            for_seconds=for_seconds,
        )

    @classmethod
    def canceled(
        cls,
        status: str = "Canceled",
        *,
        repeat: int = 1,
        delay: float = 0.0,
        for_seconds: float | None = None,
    ) -> Step:
        return cls("canceled", status=status, repeat=repeat, delay=delay, for_seconds=for_seconds)

    @classmethod
    def no_status(cls, *, repeat: int = 1, delay: float = 0.0) -> Step:
        """HTTP 200 with a JSON OperationStatus that lacks ``status``."""
        return cls("no_status", repeat=repeat, delay=delay)

    # -- failures to read the status (ARM error bodies) -------------------------------

    @classmethod
    def throttled(
        cls, retry_after: str | None = "12", *, repeat: int = 1, delay: float = 0.0
    ) -> Step:
        """HTTP 429 from the resource provider, with ``Retry-After`` (omitted when None)."""
        return cls(
            "throttled",
            http_status=429,
            error={
                "code": "TooManyRequests",
                "message": f"The request is being throttled. Retry after {retry_after} seconds."
                if retry_after is not None
                else "The request is being throttled.",
            },
            headers=_retry_after(retry_after),
            repeat=repeat,
            delay=delay,
        )

    @classmethod
    def server_error(
        cls,
        status: int = 503,
        retry_after: str | None = None,
        *,
        repeat: int = 1,
        delay: float = 0.0,
    ) -> Step:
        code = _SERVER_ERROR_CODES.get(status, "InternalServerError")
        return cls(
            "server_error",
            http_status=status,
            error={"code": code, "message": f"The service returned {status} ({code})."},
            headers=_retry_after(retry_after),
            repeat=repeat,
            delay=delay,
        )

    @classmethod
    def not_found(cls, *, repeat: int = 1, delay: float = 0.0) -> Step:
        """HTTP 404 for a scripted id: wrong location, expired record, or replication lag."""
        return cls(
            "not_found",
            http_status=404,
            error={
                "code": "NotFound",
                "message": "The operation '{operation_id}' was not found in location '{location}'.",
            },
            repeat=repeat,
            delay=delay,
        )

    @classmethod
    def forbidden(cls, *, repeat: int = 1, delay: float = 0.0) -> Step:
        return cls(
            "forbidden",
            http_status=403,
            error={
                "code": "AuthorizationFailed",
                "message": "The client '00000000-0000-0000-0000-000000000001' with object id "
                "'00000000-0000-0000-0000-000000000001' does not have authorization to "
                "perform action 'Microsoft.Cache/locations/operationsStatus/read' over scope "
                "'/subscriptions/{subscription_id}' or the scope is invalid. If access was "
                "recently granted, please refresh your credentials.",
            },
            repeat=repeat,
            delay=delay,
        )

    @classmethod
    def bad_request(
        cls,
        code: str = "InvalidApiVersionParameter",
        message: str = "The api-version is invalid for this resource type.",
        *,
        repeat: int = 1,
        delay: float = 0.0,
    ) -> Step:
        return cls(
            "bad_request",
            http_status=400,
            error={"code": code, "message": message},
            repeat=repeat,
            delay=delay,
        )

    # -- protocol breakage ------------------------------------------------------------

    @classmethod
    def malformed(
        cls,
        body: bytes = b"<html>oops",
        content_type: str = _JSON,
        *,
        repeat: int = 1,
        delay: float = 0.0,
    ) -> Step:
        """HTTP 200 whose body is not JSON (by default still labelled as JSON)."""
        return cls(
            "malformed",
            body=body,
            headers={"Content-Type": content_type},
            repeat=repeat,
            delay=delay,
        )

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | Mapping[str, Any] = b"",
        headers: Mapping[str, str] | None = None,
        *,
        repeat: int = 1,
        delay: float = 0.0,
    ) -> Step:
        """Exactly this status, body and headers (headers override the simulator's)."""
        return cls(
            "raw",
            http_status=status,
            body=body,
            headers=dict(headers or {}),
            repeat=repeat,
            delay=delay,
        )

    @classmethod
    def dropped(cls, *, repeat: int = 1, delay: float = 0.0) -> Step:
        """Reset the TCP connection without answering."""
        return cls("dropped", drop_connection=True, repeat=repeat, delay=delay)

    # -- JSON scripts (CLI) -----------------------------------------------------------

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Step:
        """``{"kind": "running", "repeat": 3, ...}``: kind names a constructor, the rest are
        its keyword arguments (``raw`` bodies may be strings or JSON objects)."""
        options = dict(spec)
        kind = options.pop("kind", None)
        constructors: dict[str, Callable[..., Step]] = {
            "running": cls.running,
            "succeeded": cls.succeeded,
            "failed": cls.failed,
            "canceled": cls.canceled,
            "no_status": cls.no_status,
            "throttled": cls.throttled,
            "server_error": cls.server_error,
            "not_found": cls.not_found,
            "forbidden": cls.forbidden,
            "bad_request": cls.bad_request,
            "malformed": cls.malformed,
            "raw": cls.raw,
            "dropped": cls.dropped,
        }
        if kind not in constructors:
            raise ValueError(f"unknown step kind {kind!r}; expected one of {sorted(constructors)}")
        if isinstance(options.get("body"), str):
            options["body"] = options["body"].encode()
        try:
            return constructors[kind](**options)
        except TypeError as exc:
            raise ValueError(f"bad options for step kind {kind!r}: {exc}") from exc


def _retry_after(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Retry-After": str(value)}


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


@dataclass
class _Progress:
    steps: tuple[Step, ...]
    scripted_at: dt.datetime
    index: int = 0
    served_in_step: int = 0
    step_started_at: float | None = None
    ended_at: dt.datetime | None = None

    def next_step(self, now: float) -> Step:
        while self.index < len(self.steps) - 1:
            step = self.steps[self.index]
            if step.for_seconds is not None:
                done = (
                    self.step_started_at is not None
                    and now - self.step_started_at >= step.for_seconds
                )
            else:
                done = self.served_in_step >= step.repeat
            if not done:
                break
            self.index += 1
            self.served_in_step = 0
            self.step_started_at = None
        self.served_in_step += 1
        if self.step_started_at is None:
            self.step_started_at = now
        return self.steps[self.index]


class _TokenBucket:
    """ARM's read throttle: ``capacity`` reads, refilled continuously at ``rate`` per second."""

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> tuple[bool, int, int]:
        """(allowed, remaining after this read, seconds until a read would be allowed)."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 0
        wait = math.ceil((1 - self.tokens) / self.rate) if self.rate > 0 else 3600
        return False, 0, max(1, wait)

    def remaining(self, now: float) -> int:
        self._refill(now)
        return int(self.tokens)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    delay: float = 0.0
    drop: bool = False
    drip: float = 0.0


# --------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------


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
        self._scripts: dict[str, _Progress] = {}
        self._requests: list[RecordedRequest] = []
        self._buckets: dict[str, _TokenBucket] = {}
        self._unmetered: dict[str, int] = {}

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
            self._scripts[operation_id] = _Progress(script, dt.datetime.now(dt.timezone.utc))

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
            "Content-Type": _JSON,
        }
        client_request_id = headers.get("x-ms-client-request-id")
        if client_request_id and headers.get("x-ms-return-client-request-id", "").lower() == "true":
            # ARM echoes the caller's id only when asked to, as here.
            base["x-ms-client-request-id"] = client_request_id

        def reply(status: int, body: Mapping[str, Any], **extra: str) -> _Reply:
            return _Reply(status, {**base, **extra}, _encode(body))

        auth_error = self._check_bearer(headers.get("Authorization"))
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
        if not _valid_api_version(api_version):
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
        status, body = self._render(step, progress, segments, context)
        return _Reply(status, {**base, **step.headers}, body, delay=step.delay, drip=step.drip)

    def _check_bearer(self, authorization: str | None) -> tuple[str, str, str] | None:
        """None when authorised, else (ARM code, message, challenge description)."""
        if not authorization:
            # ARM's own code for a missing header; a present-but-wrong token is
            # InvalidAuthenticationToken. Both are 401 with a Bearer challenge.
            return (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid "
                "format.",
                "The authentication failed because of an invalid 'Authorization' header.",
            )
        if self.expected_token is not None and token != self.expected_token:
            return (
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                "The access token is invalid.",
            )
        return None

    def _take_read(self, subscription_id: str, now: float) -> tuple[bool, int, int]:
        if self.read_budget is None:
            remaining = max(0, self._unmetered.get(subscription_id, _UNMETERED_READS + 1) - 1)
            self._unmetered[subscription_id] = remaining
            return True, remaining, 0
        return self._bucket(subscription_id, now).take(now)

    def _remaining_reads(self, subscription_id: str, now: float) -> int:
        if self.read_budget is None:
            return self._unmetered.get(subscription_id, _UNMETERED_READS)
        return self._bucket(subscription_id, now).remaining(now)

    def _bucket(self, subscription_id: str, now: float) -> _TokenBucket:
        bucket = self._buckets.get(subscription_id)
        if bucket is None:
            assert self.read_budget is not None
            bucket = _TokenBucket(self.read_budget, self.refill_per_second, now)
            self._buckets[subscription_id] = bucket
        return bucket

    def _render(
        self,
        step: Step,
        progress: _Progress,
        segments: list[str],
        context: Mapping[str, str],
    ) -> tuple[int, bytes]:
        if step.kind in _STATUS_KINDS:
            if step.terminal and progress.ended_at is None:
                progress.ended_at = dt.datetime.now(dt.timezone.utc)
            body: dict[str, Any] = {
                "id": _resource_id(segments),
                "name": context["operation_id"],
            }
            if step.status is not None:
                body["status"] = step.status
            if step.percent_complete is not None:
                body["percentComplete"] = step.percent_complete
            body["startTime"] = arm_timestamp(progress.scripted_at)
            if step.terminal:
                body["endTime"] = arm_timestamp(progress.ended_at or progress.scripted_at)
            if step.kind == "failed" and step.error is not None:
                detail = _fill(step.error, context)
                body["error"] = {"error": detail} if step.nested else detail
            return step.http_status, _encode(body)
        if step.body is not None:
            raw = step.body if isinstance(step.body, bytes) else _encode(step.body)
            return step.http_status, raw
        error = _fill(step.error or {"code": "Error", "message": "Simulated error."}, context)
        return step.http_status, _encode({"error": error})


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


def _resource_id(segments: list[str]) -> str:
    # ARM answers with the normalised location ("West US" in the request, "westus" in
    # the id: see the official example), so the id is rebuilt rather than echoed.
    normalised = list(segments)
    for index, segment in enumerate(normalised[:-1]):
        if segment.lower() == "locations":
            normalised[index + 1] = normalised[index + 1].replace(" ", "").lower()
    return "/" + "/".join(normalised)


def _valid_api_version(value: str) -> bool:
    match = _API_VERSION_RE.match(value)
    if match is None:
        return False
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        return False
    return True


def _fill(error: Mapping[str, Any], context: Mapping[str, str]) -> dict[str, Any]:
    """Copy an error object, filling ``{operation_id}``-style placeholders in its strings.

    Plain replacement rather than str.format: messages may quote JSON, braces and all.
    """

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for key, replacement in context.items():
                value = value.replace("{" + key + "}", replacement)
            return value
        if isinstance(value, Mapping):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return cast(dict[str, Any], fill(error))


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------------------
# Standalone use
# --------------------------------------------------------------------------------------


def load_scripts(path: Path) -> dict[str, list[Step]]:
    """Read ``{"op-1": [{"kind": "running", "repeat": 3}, {"kind": "succeeded"}]}``."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected an object mapping operation id to a list of steps")
    return {str(op): [Step.from_dict(spec) for spec in steps] for op, steps in document.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.arm",
        description="Serve scripted ARM operation statuses on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", help="bearer token to require (default: accept any)")
    parser.add_argument("--script", type=Path, help="JSON file: operation id -> list of steps")
    parser.add_argument("--read-budget", type=int, help="enable ARM's read token bucket")
    parser.add_argument("--refill-per-second", type=float, default=25.0)
    args = parser.parse_args(argv)

    simulator = ArmSimulator(
        args.token,
        host=args.host,
        port=args.port,
        read_budget=args.read_budget,
        refill_per_second=args.refill_per_second,
    )
    scripts = load_scripts(args.script) if args.script else {}
    for operation_id, steps in scripts.items():
        simulator.script(operation_id, steps)
    simulator.start()
    # The CLI talks to a person at a terminal; the library itself only logs.
    print(f"ARM simulator listening on {simulator.endpoint}", flush=True)  # noqa: T201
    for operation_id in scripts:
        print(f"  {operation_id}: {simulator.status_url(operation_id)}", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
