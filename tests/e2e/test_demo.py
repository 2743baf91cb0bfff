"""The README's first command: ``make demo`` must pass and tell the story.

One test, one run of the demo (about ten seconds): under pytest-xdist a shared fixture
would run it once per worker process.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path

import pytest

from emulators.demo import run_demo


def full_event(lines: list[str]) -> dict[str, object]:
    """The one JSON document the demo prints, un-timestamped, from ``{`` to ``}``."""
    assert lines.count("{") == 1, "expected exactly one event printed in full"
    start = lines.index("{")
    document: dict[str, object] = json.loads("\n".join(lines[start : lines.index("}", start) + 1]))
    return document


def said(lines: list[str], what: str, name: str) -> list[int]:
    """The indexes of the timestamped lines ``[  1.2s] WHAT NAME ...``."""
    pattern = re.compile(rf"\[\s*[\d.]+s\] {what}\s+{re.escape(name)}\s")
    return [n for n, line in enumerate(lines) if pattern.match(line)]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_demo_tells_the_story_through_the_cli_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a temp and a cache folder of its own, inherited by the worker and the CLI processes
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    cache = tmp_path / "cache"  # where `submit` would keep its history
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    out = io.StringIO()

    # When the demo runs
    code = run_demo(out=out)

    # Then every watch ended with its expected event and gate exit code
    text = out.getvalue()
    lines = text.splitlines()
    assert code == 0, text
    assert "demo passed" in text
    # ... each driven as a pipeline would: `submit` (which refuses the bad request) and a gate
    assert text.count("MessageId ") == 3, text
    assert "bad-request   refused by the CLI (exit 64)" in text
    assert "gate exit 1 (failed, canceled or rejected)" in text
    # ... each watch said submitted before any progress about it (the worker handles a
    # message before the `submit` that sent it has exited)
    for name in ("cache-create", "cache-scale", "cache-delete", "bad-request"):
        (submitted,) = said(lines, "submitted", name)
        assert all(submitted < n for n in said(lines, "progress", name)), (name, text)
    assert said(lines, "progress", "cache-create"), text  # the order was checked on something
    # ... the throttled read shown as throttled, from the worker's log
    assert "cache-delete  429, Retry-After 4 s honoured: next read in" in text
    # ... one terminal CloudEvent printed in full, ARM's nested error intact
    event = full_event(lines)
    assert event["specversion"] == "1.0"
    assert event["type"] == "OpsStatus.Operation.Failed"
    data = event["data"]
    assert isinstance(data, dict)
    assert data["error"]["details"][0]["code"] == "QuotaExceeded"
    # ... the worker stopped because its log showed every watch ended (not a timer, not the
    # last gate), and stopped cleanly
    (stop,) = [n for n, line in enumerate(lines) if "stopping the worker (SIGTERM)" in line]
    assert lines[stop].endswith("its log shows every watch ended"), lines[stop]
    (stopped,) = [n for n, line in enumerate(lines) if "worker stopped (exit code 0, " in line]
    assert stop < stopped
    # ... and no file was left behind (the worker's log went through a pipe)
    assert list(temp.iterdir()) == []
    assert list(cache.iterdir()) == []
