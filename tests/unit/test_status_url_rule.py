"""The statusUrl rule is stated three times: the parser (ops_status/target.py), the
published JSON Schema and the README. These tests hold the first two to the same verdict
on every path a pipeline could send, so the schema a pipeline validates against never
accepts what the function rejects, or the reverse."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ops_status.errors import InvalidWatchRequestError
from ops_status.request import parse_watch_request
from tests.contracts import WATCH_REQUEST

ARM = "https://management.azure.com"
SUB = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
PATTERN = re.compile(WATCH_REQUEST.schema["properties"]["statusUrl"]["pattern"])

# Characters a path segment may hold as is, a few it may not, and escapes of both kinds.
PLAIN = "AZaz09._~*:+=!$@,;()'-"
UNSAFE = '"&<>[]^`{|}'
escapes = st.integers(min_value=0x00, max_value=0xFF).map(lambda n: f"%{n:02X}")
lower_escapes = escapes.map(str.lower)
piece = st.one_of(st.sampled_from(PLAIN), st.sampled_from(UNSAFE), escapes, lower_escapes)
segment = st.lists(piece, min_size=0, max_size=4).map("".join)


def parser_accepts(url: str) -> bool:
    body = f'{{"statusUrl": "{url}"}}'.encode()
    try:
        parse_watch_request(body, arm_endpoint=ARM)
    except InvalidWatchRequestError:
        return False
    return True


def status_url(path: str, query: str = "api-version=2025-07-01") -> str:
    return f"{ARM}/subscriptions/{SUB}/{path}?{query}"


@settings(max_examples=400, deadline=None)
@given(st.lists(segment, min_size=1, max_size=4).map("/".join))
@example("providers/Microsoft.Cache/x/abc%2A12")
@example("providers/Microsoft.Cache/x/abc%2F12")
@example("providers/Microsoft.Cache/x/abc%2512")
@example("providers/Microsoft.Cache/x/West%20US")
@example("providers/Microsoft.Cache/%2E%2E/op")
@example("providers/Microsoft.Cache/.%2e/op")
@example("providers/Microsoft.Cache/.../op")
@example("providers/Microsoft.Cache//op")
@example("providers/Microsoft.Cache/op/")
def test_schema_and_parser_agree_on_every_path(path: str) -> None:
    url = status_url(path)
    if '"' in url:  # would end the JSON string in parser_accepts
        url = url.replace('"', "%22")

    assert bool(PATTERN.search(url)) == parser_accepts(url), url


@pytest.mark.parametrize(
    ("query", "accepted"),
    [
        ("api-version=2025-07-01", True),
        ("t=638&c=MI%2BH&api-version=2025-07-01&s=sig", True),
        ("api-version=2025-07-01-preview", True),
        ("api-version=25-07-01", False),
        ("version=2025-07-01", False),
    ],
)
def test_schema_and_parser_agree_on_the_query(query: str, accepted: bool) -> None:
    url = status_url("providers/Microsoft.Cache/locations/westus/operationsStatus/op", query)

    assert bool(PATTERN.search(url)) is accepted
    assert parser_accepts(url) is accepted
