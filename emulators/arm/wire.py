"""ARM's conventions on the wire, shared by the scripts and the server.

This module owns the small shapes every ARM answer uses: the JSON content type, the error
envelope (``{"error": {"code", "message"}}``), ARM's timestamp form, request ids, the
date form of ``api-version`` and the bearer-token check ARM's front door applies first.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "JSON_CONTENT_TYPE",
    "arm_error",
    "arm_timestamp",
    "bearer_problem",
    "encode",
    "new_guid",
    "valid_api_version",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# ARM's date-form api-version, with the suffixes ARM uses for non-GA versions.
_API_VERSION_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(-(preview|privatepreview|alpha|beta))?$")


def new_guid() -> str:
    return str(uuid.uuid4())


def arm_timestamp(moment: dt.datetime) -> str:
    """ARM's example form, e.g. ``2017-01-01T13:13:13.933Z`` (UTC, milliseconds)."""
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def arm_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """ARM's error response envelope: ``{"error": {"code", "message", ...}}``."""
    return {"error": {"code": code, "message": message, **extra}}


def valid_api_version(value: str) -> bool:
    match = _API_VERSION_RE.match(value)
    if match is None:
        return False
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        return False
    return True


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def bearer_problem(
    authorization: str | None, expected_token: str | None
) -> tuple[str, str, str] | None:
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
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            "The authentication failed because of an invalid 'Authorization' header.",
        )
    if expected_token is not None and token != expected_token:
        return (
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            "The access token is invalid.",
        )
    return None
