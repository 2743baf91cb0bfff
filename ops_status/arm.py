"""ArmClient: reads one async operation's status from Azure Resource Manager over HTTP.

A thin adapter: it gets a token, sends one GET with ``requests``, reads at most
``MAX_RESPONSE_BYTES`` and hands status, headers and body to the pure
``classify_response``. It never raises for what ARM answers (or fails to answer), nor
when no token can be had: that is a ``ReadFailure`` of kind ``TOKEN_UNAVAILABLE``, which
the decision retries with back-off for ``OPS_STATUS_TOKEN_FAILURE_GRACE``. (Raising made
the host redeliver at once; MSAL replays a cached failure for about 5 s, so ten
deliveries, and the watch, were gone in 5 s.)

The bearer token only ever goes to the configured endpoint: the URL is the endpoint
plus a path validated by ``parse_watch_request``, checked again here, and redirects
are never followed.

Each read is a ``GET`` CLIENT span (HTTP client semantic conventions: method, server,
``url.full`` with only the ``api-version`` query parameter, status code, ``error.type``)
and the request carries that span's ``traceparent``, so ARM's own logs can be joined to
the watch's trace. The span also says what the read meant (``ops_status.arm_status``,
``ops_status.throttled``, ``ops_status.remaining_reads``). Its duration and status go to
``ops_status.arm.read.duration``, measured around the request alone (not the token).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from azure.core.credentials import TokenCredential
from opentelemetry import trace
from opentelemetry.trace import Span
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ops_status import __version__, tracing
from ops_status.clock import utcnow
from ops_status.logs import log
from ops_status.metrics import WatchMetrics, default_metrics
from ops_status.observation import (
    Observation,
    ReadFailure,
    ReadFailureKind,
    StatusRead,
    classify_response,
)
from ops_status.request import WatchRequest

__all__ = ["DEFAULT_MAX_CONNECTIONS", "MAX_RESPONSE_BYTES", "USER_AGENT", "ArmClient"]

logger = logging.getLogger(__name__)

USER_AGENT = f"ops-status/{__version__} python-requests/{requests.__version__}"
# A status document is well under 10 KB; a larger answer is hostile or broken.
MAX_RESPONSE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
# Keep-alive connections kept per host. requests' default (10) is below the host's
# concurrency (maxConcurrentCalls 16, the Python worker's thread pool up to 32): every
# read beyond 10 in flight opened a connection that was then thrown away ("Connection
# pool is full, discarding connection"), so connections grew with the message count.
DEFAULT_MAX_CONNECTIONS = 32


class ArmClient:
    """Reads operation status from one ARM endpoint with one credential and one session.

    Example::

        client = ArmClient("https://management.azure.com", ManagedIdentityCredential())
        observation = client.get_operation_status(request)

    Safe to share between threads: ``requests.Session`` is used only for sending, and
    azure-identity credentials are thread-safe.
    """

    def __init__(
        self,
        endpoint: str,
        credential: TokenCredential,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        session: requests.Session | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        metrics: WatchMetrics | None = None,
    ) -> None:
        self._metrics = metrics or default_metrics()
        self._endpoint = endpoint.rstrip("/")
        self._netloc = urlsplit(self._endpoint).netloc
        self._host = urlsplit(self._endpoint).hostname or self._netloc
        self._scope = self._endpoint + "/.default"
        self._credential = credential
        self._timeout = (connect_timeout, read_timeout)
        # With our own session, reads go straight to its adapter (``_get``): a
        # Session call re-parses the URL, merges settings, cookies and hooks on every read
        # (a third of a read's CPU, profiled). A session passed in is used as a Session.
        self._adapter: HTTPAdapter | None = None
        if session is None:
            session = requests.Session()
            # Sized for the caller's concurrency: one kept connection per concurrent read.
            self._adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections)
            session.mount("https://", self._adapter)
            session.mount("http://", self._adapter)
        self._session = session
        # Proxies from the environment would see the bearer token; ARM is reached directly.
        self._session.trust_env = False

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def get_operation_status(self, request: WatchRequest) -> Observation:
        """One status read. Returns a ``StatusRead`` or a ``ReadFailure``; never raises for
        a failed read, a failed token request included."""
        url = self._endpoint + request.target.status_path
        if urlsplit(url).netloc != self._netloc:  # defence in depth; parsing already ensures it
            raise ValueError("status path would leave the configured ARM endpoint")
        attempt = (request.state.attempt if request.state is not None else 0) + 1
        with tracing.http_client_span(
            url,
            attributes={
                "ops_status.operation_id": request.target.operation_id,
                "ops_status.attempt": attempt,
            },
        ) as span:
            token = self._token()
            if isinstance(token, ReadFailure):
                log(logger, logging.WARNING, "arm.token_unavailable", detail=token.detail)
                # No request went out: the span says why there is no status code.
                tracing.set_attributes(
                    span,
                    {"error.type": token.kind.value, "ops_status.read_failure": token.kind.value},
                )
                span.set_status(trace.Status(trace.StatusCode.ERROR, token.kind.value))
                return token
            client_request_id = str(uuid.uuid4())
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                # Status documents are tiny; identity encoding keeps the size cap honest.
                "Accept-Encoding": "identity",
                "User-Agent": USER_AGENT,
                "x-ms-client-request-id": client_request_id,
                "x-ms-return-client-request-id": "true",
            }
            context = tracing.trace_context_of(span)
            if context is not None:
                headers["traceparent"] = context.traceparent
                if context.tracestate:
                    headers["tracestate"] = context.tracestate
            correlation = _correlation_request_id(request.correlation_id)
            if correlation:
                headers["x-ms-correlation-request-id"] = correlation
            started = time.monotonic()
            answer = self._send(url, headers)
            elapsed = time.monotonic() - started
            observation = answer.observation
            _describe(span, answer, client_request_id)
            self._metrics.arm_read(
                elapsed,
                status_code=answer.status_code,
                error_type=answer.error_type,
                server_address=self._host,
            )
        log(
            logger,
            logging.INFO if isinstance(observation, ReadFailure) else logging.DEBUG,
            "arm.status_read",
            client_request_id=client_request_id,
            correlation_request_id=correlation,
            http_status=observation.http_status if isinstance(observation, ReadFailure) else 200,
            status=observation.status if isinstance(observation, StatusRead) else None,
            failure=observation.kind.value if isinstance(observation, ReadFailure) else None,
            retry_after_s=observation.retry_after,
            elapsed_ms=round(elapsed * 1000),
        )
        return observation

    def close(self) -> None:
        self._session.close()

    def _token(self) -> str | ReadFailure:
        try:
            return self._credential.get_token(self._scope).token
        except Exception as exc:  # noqa: BLE001 - any way of getting no token is a failed read
            # azure-identity raises ClientAuthenticationError / CredentialUnavailableError
            # (AzureError), ValueError for a malformed client id, and whatever msal lets
            # through on a garbled answer: all mean "no read now", never "redeliver now".
            return ReadFailure(
                ReadFailureKind.TOKEN_UNAVAILABLE,
                f"no token for {self._scope}: {type(exc).__name__}: {str(exc)[:300]}",
            )

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """Send the GET; the caller reads the body (streamed). Never follows a redirect."""
        if self._adapter is None:
            return self._session.get(
                url, headers=headers, timeout=self._timeout, allow_redirects=False, stream=True
            )
        prepared = requests.PreparedRequest()
        prepared.method = "GET"
        # The endpoint plus a path parse_watch_request built from quoted segments: nothing
        # for requests to re-quote. No cookies, no hooks, no proxies, no redirects.
        prepared.url = url
        prepared.headers = CaseInsensitiveDict(headers)
        return self._adapter.send(
            prepared, stream=True, timeout=self._timeout, verify=True, cert=None, proxies={}
        )

    def _send(self, url: str, headers: dict[str, str]) -> _Answer:
        try:
            with self._get(url, headers) as response:
                # requests' read timeout is per socket read: a slow drip of bytes would
                # never trip it, so the whole body also gets an overall deadline.
                body = _read_capped(response, deadline=time.monotonic() + sum(self._timeout))
                now = utcnow()
                status = response.status_code
                if isinstance(body, str):
                    failure = ReadFailure(ReadFailureKind.TRANSIENT, body, status)
                    return _Answer(failure, status, "ResponseBodyAbandoned")
                observation = classify_response(status, response.headers, body, now=now)
                return _Answer(observation, status, str(status) if status >= 400 else None)
        except requests.Timeout as exc:
            detail = f"timeout: {type(exc).__name__}"
            kind = tracing.error_type(exc)
        except requests.ConnectionError as exc:
            detail = f"connection error: {type(exc).__name__}"
            kind = tracing.error_type(exc)
        except requests.RequestException as exc:
            detail = f"request error: {type(exc).__name__}"
            kind = tracing.error_type(exc)
        return _Answer(ReadFailure(ReadFailureKind.TRANSIENT, detail), None, kind)


@dataclass(frozen=True)
class _Answer:
    """What one request got: the observation, plus what the HTTP span and metric record."""

    observation: Observation
    status_code: int | None
    """None when no response arrived (timeout, connection error)."""
    error_type: str | None
    """``error.type``: the status code from 400 up, the exception's class, or None."""


def _describe(span: Span, answer: _Answer, client_request_id: str) -> None:
    observation = answer.observation
    failure = observation if isinstance(observation, ReadFailure) else None
    tracing.set_attributes(
        span,
        {
            "http.response.status_code": answer.status_code,
            "error.type": answer.error_type,
            "ops_status.client_request_id": client_request_id,
            "ops_status.arm_status": observation.status
            if isinstance(observation, StatusRead)
            else None,
            "ops_status.read_failure": failure.kind.value if failure else None,
            "ops_status.throttled": failure is not None
            and failure.kind is ReadFailureKind.THROTTLED,
            "ops_status.retry_after": observation.retry_after,
            "ops_status.remaining_reads": observation.remaining_reads,
        },
    )
    if answer.error_type is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, answer.error_type))


def _read_capped(response: requests.Response, *, deadline: float) -> bytes | str:
    """The body, or a string saying why it was abandoned (too large, too slow)."""
    too_large = f"response larger than {MAX_RESPONSE_BYTES} bytes"
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        return too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := response.raw.read1(_CHUNK):
        # read1 returns what has arrived instead of waiting for a full chunk, so the
        # deadline is checked while bytes drip in.
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return too_large
        if time.monotonic() > deadline:
            return "response body too slow: overall read deadline passed"
        chunks.append(chunk)
    return b"".join(chunks)


def _correlation_request_id(correlation_id: str | None) -> str | None:
    """ARM expects a GUID here; a pipeline's free-form id is mapped to a stable one."""
    if not correlation_id:
        return None
    try:
        return str(uuid.UUID(correlation_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ops-status:{correlation_id}"))
