"""The ``depth`` class: nesting depth swept 1-2,000 wherever a document nests."""

from __future__ import annotations

from collections.abc import Iterator

from ops_status.observation import (
    StatusRead,
)

from .documents import (
    intake_doc,
    nested_text,
    splice,
    to_json,
)
from .harness import Case, HandlerHarness
from .properties import (
    MAX_JSON_DEPTH,
)


def depth_cases(harness: HandlerHarness, *, top: int = 2000) -> Iterator[Case]:
    """Depth ``d`` = nesting of the whole document as the parser counts it (root = 1)."""
    template = harness.poll_template
    intake = intake_doc()
    for d in range(1, top + 1):
        ok = "accepted" if d <= MAX_JSON_DEPTH else "rejected"
        answer = StatusRead("Running") if d % 2 else StatusRead("Succeeded")
        if d == 1:
            yield Case("context objects", "intake", to_json(intake), answer, "accepted")
            yield Case("root array", "intake", b"[]", answer, "rejected")
            continue
        objects, arrays = nested_text("object", d - 1), nested_text("array", d - 1)
        yield Case("context objects", "intake", splice(intake, "context", objects), answer, ok)
        yield Case("unknown field", "intake", splice(intake, "extra", arrays), answer, ok)
        yield Case("statusUrl", "intake", splice({}, "statusUrl", objects), answer, "rejected")
        root = nested_text("array", d).encode()
        yield Case("root array", "intake", root, answer, "rejected")
        yield Case("poll context", "polls", splice(template, "context", objects), answer, ok)
        if d >= 3:
            inner = '{"a":' + nested_text("array", d - 2) + "}"
            yield Case("context arrays", "intake", splice(intake, "context", inner), answer, ok)
            state = nested_text("object", d - 2)
            yield Case("pollState", "polls", splice(template, "pollState.extra", state), answer, ok)
