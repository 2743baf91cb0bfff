"""Published examples cannot drift: the example events are regenerated from the code, and
every JSON example in the README and docs/ is validated against the published schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from examples.generate import EVENTS, example_events, main
from tests.contracts import assert_valid_event, assert_valid_watch_request

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXPECTED_EVENTS = {
    "succeeded.json": "OpsStatus.Operation.Succeeded",
    "failed.json": "OpsStatus.Operation.Failed",
    "canceled.json": "OpsStatus.Operation.Canceled",
    "timed-out.json": "OpsStatus.Operation.TimedOut",
    "rejected.json": "OpsStatus.Watch.Rejected",
}


def test_example_event_files_are_exactly_what_the_code_generates() -> None:
    generated = example_events()

    assert sorted(generated) == sorted(p.name for p in EVENTS.glob("*.json"))
    for name, content in generated.items():
        assert (EVENTS / name).read_bytes() == content, (
            f"examples/events/{name} is stale: run python -m examples.generate"
        )
    assert main(["--check"]) == 0


@pytest.mark.parametrize(("name", "event_type"), sorted(EXPECTED_EVENTS.items()))
def test_each_example_is_a_valid_event_of_its_kind(name: str, event_type: str) -> None:
    event = assert_valid_event((EVENTS / name).read_bytes())

    assert event["type"] == event_type


def test_the_failed_example_carries_arms_nested_error_unwrapped_with_details_intact() -> None:
    event = json.loads((EVENTS / "failed.json").read_bytes())

    error = event["data"]["error"]
    assert error["code"] == "ResourceOperationFailure"
    assert error["details"][0]["code"] == "QuotaExceeded"
    assert error["details"][0]["additionalInfo"][0]["info"]["limit"] == 8


def json_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every fenced code block tagged json."""
    text = path.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in re.finditer(r"^```json\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    ]


DOC_BLOCKS = [
    pytest.param(block, id=f"{path.relative_to(ROOT)}:{line}")
    for path in DOCUMENTS
    for line, block in json_blocks(path)
]


def test_the_docs_have_json_examples_to_check() -> None:
    assert len(DOC_BLOCKS) >= 2


@pytest.mark.parametrize("block", DOC_BLOCKS)
def test_every_json_example_in_the_docs_is_a_valid_event_or_watch_request(block: str) -> None:
    document = json.loads(block)

    # An event is recognisable by its CloudEvents envelope; anything else a doc shows as
    # JSON is a watch request (the only other contract).
    if "specversion" in document:
        assert_valid_event(document)
    else:
        assert_valid_watch_request(document)
