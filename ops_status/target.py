"""OperationTarget: which ARM operation a watch reads, from its parts or its status URL.

The one place a request's target is validated: a ``statusUrl`` must point at the
configured ARM endpoint, with a path of plain segments and exactly one api-version, so
that no accepted input can send the bearer token anywhere else; parts are checked
against ARM's forms and turned into the ``Microsoft.Cache`` ``operationsStatus`` path.
Problems are appended to the caller's list (``ops_status.request`` reports them all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

__all__ = [
    "DEFAULT_API_VERSION",
    "MAX_OPERATION_ID_LENGTH",
    "MAX_STATUS_URL_LENGTH",
    "OperationTarget",
    "target_from_parts",
    "target_from_url",
]

DEFAULT_API_VERSION = "2025-07-01"
MAX_STATUS_URL_LENGTH = 2048
MAX_OPERATION_ID_LENGTH = 256

# Every pattern is used with ``fullmatch``: ``re.match(r"^...$")`` would accept a trailing
# newline, which would then travel into ARM's path and into events.
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LOCATION = re.compile(r"[A-Za-z0-9 ]{1,64}")
# Unreserved characters plus a few sub-delimiters seen in real operation ids (``*`` in
# many providers' ids, ``:``/``+``/``=`` in encoded ones). No '/', '?', '#', '%', '\'.
_OPERATION_ID = re.compile(r"[A-Za-z0-9._~*:+=!$@-]+")
# [0-9], not \d: \d also matches Arabic-Indic and fullwidth digits.
_API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview|-beta|-alpha|-privatepreview)?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~*:+=!$@,;()'-]+")
_RAW_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~*:+=!$@,;()'-]|%[0-9A-Fa-f]{2})+")


@dataclass(frozen=True)
class OperationTarget:
    """Where the operation's status is read, relative to the ARM endpoint."""

    status_path: str
    """Path and query, e.g. ``/subscriptions/{id}/providers/...?api-version=2025-07-01``."""
    subscription_id: str
    operation_id: str
    location: str | None = None
    provider: str | None = None


def target_from_parts(document: Mapping[str, Any], errors: list[str]) -> OperationTarget | None:
    subscription = document.get("subscriptionId")
    location = document.get("location")
    operation = document.get("operationId")
    api_version = document.get("apiVersion", DEFAULT_API_VERSION)
    before = len(errors)
    if not isinstance(subscription, str) or not _GUID.fullmatch(subscription):
        errors.append("subscriptionId must be a GUID")
    if not isinstance(location, str) or not _LOCATION.fullmatch(location) or not location.strip():
        errors.append("location must be an Azure region name (letters, digits and spaces)")
    if (
        not isinstance(operation, str)
        or not 0 < len(operation) <= MAX_OPERATION_ID_LENGTH
        or not _OPERATION_ID.fullmatch(operation)
        or operation in (".", "..")
    ):
        errors.append(
            f"operationId must be 1-{MAX_OPERATION_ID_LENGTH} characters of letters, digits "
            "and ._~*:+=!$@- (no '/', '?', '#', '%' or spaces)"
        )
    if not isinstance(api_version, str) or not _API_VERSION.fullmatch(api_version):
        errors.append("apiVersion must have the ARM date form YYYY-MM-DD[-preview]")
    if len(errors) > before:
        return None
    assert isinstance(subscription, str)
    assert isinstance(location, str)
    assert isinstance(operation, str)
    region = location.replace(" ", "").lower()
    path = (
        f"/subscriptions/{subscription.lower()}/providers/Microsoft.Cache/locations/"
        f"{quote(region, safe='')}/operationsStatus/{quote(operation, safe='')}"
    )
    return OperationTarget(
        status_path=f"{path}?{urlencode({'api-version': api_version})}",
        subscription_id=subscription.lower(),
        operation_id=operation,
        location=region,
        provider="Microsoft.Cache",
    )


def target_from_url(value: Any, arm_endpoint: str, errors: list[str]) -> OperationTarget | None:
    if not isinstance(value, str) or not value:
        errors.append("statusUrl must be a non-empty string")
        return None
    if len(value) > MAX_STATUS_URL_LENGTH:
        errors.append(f"statusUrl is longer than {MAX_STATUS_URL_LENGTH} characters")
        return None
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F or c == "\\" for c in value):
        errors.append(
            "statusUrl must not contain spaces, control characters, backslashes or non-ASCII"
        )
        return None
    endpoint = urlsplit(arm_endpoint)
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        errors.append("statusUrl is not a valid URL")
        return None
    if "@" in url.netloc or url.username is not None or url.password is not None:
        errors.append("statusUrl must not contain user information")
        return None
    default_port = 443 if endpoint.scheme == "https" else 80
    if (
        url.scheme.lower() != endpoint.scheme
        or (url.hostname or "") != endpoint.hostname
        or (default_port if port is None else port) != (endpoint.port or default_port)
    ):
        errors.append(
            f"statusUrl must point at the configured ARM endpoint {arm_endpoint} "
            "(same scheme, host and port)"
        )
        return None
    if url.fragment or "#" in value:
        errors.append("statusUrl must not have a fragment")
        return None
    segments = url.path.split("/")
    if len(segments) < 4 or segments[0] != "" or segments[1].lower() != "subscriptions":
        errors.append("statusUrl path must start with /subscriptions/{subscriptionId}/")
        return None
    if not _GUID.fullmatch(segments[2]):
        errors.append("statusUrl path must start with /subscriptions/{subscriptionId}/ (a GUID)")
        return None
    rest = segments[3:]
    for segment in rest:
        problem = _segment_problem(segment)
        if problem:
            errors.append(f"statusUrl path {problem}")
            return None
    try:
        query = parse_qsl(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
    except ValueError:
        errors.append("statusUrl has a malformed query string")
        return None
    versions = [v for k, v in query if k == "api-version"]
    if len(versions) != 1 or not _API_VERSION.fullmatch(versions[0]):
        errors.append("statusUrl must carry exactly one api-version of the ARM date form")
        return None
    lowered = [s.lower() for s in rest]
    location = None
    if "locations" in lowered and lowered.index("locations") + 1 < len(rest):
        location = unquote(rest[lowered.index("locations") + 1]).replace(" ", "").lower()
    provider = None
    if "providers" in lowered and lowered.index("providers") + 1 < len(rest):
        provider = rest[lowered.index("providers") + 1]
    path = "/".join(["", "subscriptions", segments[2].lower(), *rest])
    return OperationTarget(
        status_path=f"{path}?{urlencode(query)}",
        subscription_id=segments[2].lower(),
        operation_id=unquote(rest[-1]),
        location=location,
        provider=provider,
    )


def _segment_problem(segment: str) -> str | None:
    """Why a path segment is unsafe, or None. Percent-escapes are allowed only where the
    decoded text is itself a plain segment: an encoded '/', '\\', '.' or '%' could
    re-route the request once a server decodes it."""
    if not segment:
        return "has an empty segment"
    if not _RAW_SEGMENT.fullmatch(segment):
        return "has characters outside a URL path segment"
    decoded = unquote(segment)
    if decoded in (".", ".."):
        return "must not contain dot segments"
    if not _PATH_SEGMENT.fullmatch(decoded):
        return "must not encode '/', '\\', '%', '?', '#', spaces or control characters"
    return None
