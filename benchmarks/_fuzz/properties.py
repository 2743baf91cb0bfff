"""The properties the fuzz checks at the untrusted boundaries, and its fixed values.

``check_request``: ``parse_watch_request`` raises nothing but ``InvalidWatchRequestError``
and an accepted request stays on the endpoint; ``check_response``: ``classify_response``
never raises and returns a ``StatusRead`` or ``ReadFailure``. Both count into ``counts``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ops_status.errors import InvalidWatchRequestError
from ops_status.observation import (
    ReadFailure,
    StatusRead,
    classify_response,
)
from ops_status.request import WatchRequest, parse_watch_request

ROOT = Path(__file__).resolve().parents[2]
ARM = "https://management.azure.com"
SUB = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
#: The request parser's depth limit (ops_status/request.py); the fuzz checks it holds.
MAX_JSON_DEPTH = 32

counts: Counter[str] = Counter()


def check_request(body: bytes) -> None:
    counts["request.tried"] += 1
    try:
        request = parse_watch_request(body, arm_endpoint=ARM)
    except InvalidWatchRequestError:
        counts["request.rejected"] += 1
        return
    counts["request.accepted"] += 1
    assert_on_endpoint(request)


def assert_on_endpoint(request: WatchRequest) -> None:
    path = request.target.status_path
    final = urlsplit(ARM + path)
    problems = []
    if final.netloc != "management.azure.com" or final.scheme != "https":
        problems.append("left the endpoint")
    if not path.startswith("/subscriptions/") or path.startswith("//"):
        problems.append("re-rooted path")
    if any(not s or unquote(s) in (".", "..") for s in final.path.split("/")[1:]):
        problems.append("dot or empty segment")
    if any(c in path for c in "\\#\r\n\x00\t "):
        problems.append("unsafe character")
    if problems:
        raise AssertionError(f"{problems}: {path!r}")


def check_response(status: int, headers: dict[str, str], body: bytes) -> None:
    counts["response.tried"] += 1
    observation = classify_response(status, headers, body, now=NOW)
    if isinstance(observation, StatusRead):
        counts["response.status_read"] += 1
    elif isinstance(observation, ReadFailure):
        counts[f"response.{observation.kind.value}"] += 1
    else:
        raise AssertionError(f"unexpected observation {observation!r}")
