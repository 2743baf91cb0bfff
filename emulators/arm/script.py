"""Operation scripts: ``Step``, the JSON script format and its file loader.

This module owns what a test (or ``python -m emulators.arm --script``) says an operation
answers, poll by poll: the ``Step`` constructors for each kind of answer (OperationStatus
bodies, ARM error bodies, protocol breakage), ``Step.from_dict`` for the JSON form
(``{"kind": "running", "repeat": 3}``) and ``load_scripts`` for a file of them. Playing a
script back is ``playback``'s job; answering HTTP is ``server``'s.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .wire import JSON_CONTENT_TYPE

__all__ = ["STATUS_KINDS", "Step", "default_failure_error", "load_scripts"]

#: Step kinds whose body is an OperationStatus (the rest carry an ARM error body or raw bytes).
STATUS_KINDS = frozenset({"running", "succeeded", "failed", "canceled", "no_status"})
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
        content_type: str = JSON_CONTENT_TYPE,
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


def load_scripts(path: Path) -> dict[str, list[Step]]:
    """Read ``{"op-1": [{"kind": "running", "repeat": 3}, {"kind": "succeeded"}]}``."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected an object mapping operation id to a list of steps")
    return {str(op): [Step.from_dict(spec) for spec in steps] for op, steps in document.items()}
