"""The ``whitespace`` and ``unicode-digits`` classes: every string field with leading or
trailing whitespace, and with digits from other scripts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ops_status.observation import (
    StatusRead,
)

from .documents import (
    examples_of,
    intake_doc,
    renamed,
    to_json,
    with_path,
)
from .harness import Case, HandlerHarness
from .properties import (
    ARM,
    SUB,
)

#: Whitespace a field may end (or start) with: ASCII, C0/C1 controls, Unicode spaces,
#: separators and the BOM.
SPACES = [
    " ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x0b",
    "\x0c",
    "\x00",
    "\x1c",
    "\x85",
    "\xa0",
    "\u1680",
    "\u2000",
    "\u2028",
    "\u2029",
    "\u202f",
    "\u3000",
    "\ufeff",
    " \n",
    "\n\n",
]


def _string_fields(harness: HandlerHarness) -> list[tuple[str, str, dict[str, Any], str]]:
    """(label, queue, document, dotted path of a string field) for every string field."""
    intake = intake_doc(
        apiVersion="2025-07-01",
        correlationId="run-1",
        deadline="2026-11-28T13:00:00Z",
        timeout="3600",
        context={"stage": "scale"},
    )
    url = {
        "statusUrl": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Cache/locations/westus/"
        "operationsStatus/op-1?api-version=2025-07-01",
        "correlationId": "run-1",
    }
    poll = harness.poll_template
    poll = with_path(poll, "correlationId", "run-1")
    poll = with_path(poll, "deadline", "2026-11-28T13:00:00Z")
    fields = [
        ("intake", intake, name)
        for name in (
            "subscriptionId",
            "location",
            "operationId",
            "apiVersion",
            "correlationId",
            "deadline",
            "timeout",
            "context.stage",
        )
    ]
    fields.append(("intake", url, "statusUrl"))
    fields += [
        ("polls", poll, name)
        for name in (
            "subscriptionId",
            "location",
            "operationId",
            "apiVersion",
            "correlationId",
            "deadline",
            "watchId",
            "submissionId",
            "pollState.firstSeen",
            "pollState.deadline",
            "pollState.lastStatus",
            "pollState.failures.Transient.since",
        )
    ]
    return [(f"{queue} {path}", queue, document, path) for queue, document, path in fields]


def _get(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for name in path.split("."):
        value = value[name]
    return value


def whitespace_cases(harness: HandlerHarness) -> Iterator[Case]:
    answers = [StatusRead("Running"), StatusRead("Succeeded")]
    n = 0
    for label, queue, document, path in _string_fields(harness):
        value = _get(document, path)
        for space in SPACES:
            for where, changed in (("trailing", value + space), ("leading", space + value)):
                n += 1
                yield Case(
                    f"{label} ({where})",
                    queue,
                    to_json(with_path(document, path, changed)),
                    answers[n % 2],
                )
    # keys too: a context key, and a failure kind in the poll state
    for space in SPACES:
        intake = intake_doc(context={"stage" + space: "scale"})
        yield Case("intake context key (trailing)", "intake", to_json(intake), answers[0])
        poll = renamed(harness.poll_template, "pollState.failures.Transient", "Transient" + space)
        yield Case("polls pollState.failures key (trailing)", "polls", to_json(poll), answers[0])


DIGIT_SYSTEMS = {
    "arabic-indic": 0x0660,
    "extended-arabic-indic": 0x06F0,
    "nko": 0x07C0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
    "fullwidth": 0xFF10,
    "math-bold": 0x1D7CE,
    "math-monospace": 0x1D7F6,
}
SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"


def _digits(system: str) -> str:
    if system == "superscript":
        return SUPERSCRIPTS
    return "".join(chr(DIGIT_SYSTEMS[system] + i) for i in range(10))


def _translate(value: str, digits: str, mode: str) -> str:
    positions = [i for i, c in enumerate(value) if "0" <= c <= "9"]
    if mode == "first":
        positions = positions[:1]
    elif mode == "last":
        positions = positions[-1:]
    chars = list(value)
    for i in positions:
        chars[i] = digits[int(chars[i])]
    return "".join(chars)


def unicode_digit_cases(
    harness: HandlerHarness, *, random_count: int = 0, seed: int = 1
) -> Iterator[Case]:
    intake = intake_doc(
        apiVersion="2025-07-01",
        timeout="3600",
        deadline="2026-11-28T13:00:00Z",
        operationId="op-1234",
        location="eastus2",
    )
    url_query = {
        "statusUrl": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Cache/locations/westus/"
        "operationsStatus/op-1?api-version=",
    }
    poll = with_path(harness.poll_template, "deadline", "2026-11-28T13:00:00Z")
    targets: list[tuple[str, str, dict[str, Any], str]] = [
        ("intake apiVersion", "intake", intake, "apiVersion"),
        ("intake timeout", "intake", intake, "timeout"),
        ("intake deadline", "intake", intake, "deadline"),
        ("intake subscriptionId", "intake", intake, "subscriptionId"),
        ("intake operationId", "intake", intake, "operationId"),
        ("intake location", "intake", intake, "location"),
        ("polls apiVersion", "polls", poll, "apiVersion"),
        ("polls watchId", "polls", poll, "watchId"),
        ("polls pollState.firstSeen", "polls", poll, "pollState.firstSeen"),
        ("polls pollState.deadline", "polls", poll, "pollState.deadline"),
        ("polls pollState.failures.since", "polls", poll, "pollState.failures.Transient.since"),
    ]
    systems = [*DIGIT_SYSTEMS, "superscript"]
    for label, queue, document, path in targets:
        value = _get(document, path)
        for system in systems:
            for mode in ("all", "first", "last"):
                changed = _translate(value, _digits(system), mode)
                yield Case(label, queue, to_json(with_path(document, path, changed)))
    for system in systems:
        for mode in ("all", "first", "last"):
            version = _translate("2025-07-01", _digits(system), mode)
            document = {"statusUrl": url_query["statusUrl"] + version}
            yield Case("intake statusUrl api-version", "intake", to_json(document))
            # a JSON string timeout is the only place a number travels as text
            yield Case(
                "intake timeout (string)",
                "intake",
                to_json(intake_doc(timeout=_translate("900", _digits(system), mode))),
            )
    if random_count:
        from hypothesis import strategies as st

        mixes = st.tuples(
            st.sampled_from(range(len(targets))),
            st.lists(
                st.sampled_from([*"0123456789", *"".join(_digits(s) for s in systems)]),
                min_size=1,
                max_size=4,
            ),
        )
        for index, replacement in examples_of(mixes, random_count, seed):
            label, queue, document, path = targets[index]
            value = _get(document, path)
            positions = [i for i, c in enumerate(value) if "0" <= c <= "9"]
            chars = list(value)
            for i, digit in zip(positions, replacement, strict=False):
                chars[i] = digit
            yield Case(
                f"{label} (mixed)", queue, to_json(with_path(document, path, "".join(chars)))
            )
