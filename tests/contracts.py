"""The published JSON Schemas, loaded once for every test layer that checks a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = Path(__file__).parent.parent / "schemas"


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


WATCH_REQUEST = _validator("watch-request.schema.json")
EVENT = _validator("event.schema.json")
POLL_MESSAGE = _validator("poll-message.schema.json")


def assert_valid_event(body: bytes | dict[str, Any]) -> dict[str, Any]:
    document = json.loads(body) if isinstance(body, bytes) else body
    EVENT.validate(document)
    if "traceparent" in document:
        # The schema's pattern and the product's W3C parser agree on what is valid.
        from ops_status.traceparent import parse_trace_context

        context = parse_trace_context(document["traceparent"], document.get("tracestate"))
        assert context is not None, f"traceparent {document['traceparent']!r} is not valid"
        assert context.tracestate == document.get("tracestate"), "tracestate is not valid"
    return document


def assert_valid_watch_request(body: bytes | dict[str, Any]) -> dict[str, Any]:
    document = json.loads(body) if isinstance(body, bytes) else body
    WATCH_REQUEST.validate(document)
    return document


def assert_valid_poll_message(body: bytes | dict[str, Any]) -> dict[str, Any]:
    document = json.loads(body) if isinstance(body, bytes) else body
    POLL_MESSAGE.validate(document)
    return document
