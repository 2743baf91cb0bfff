"""The README's first command: ``make demo`` must pass on the product as it is."""

from __future__ import annotations

import io

import pytest

from emulators.demo import run_demo


@pytest.mark.timeout(120)
def test_the_demo_ends_every_watch_with_its_expected_event() -> None:
    out = io.StringIO()

    code = run_demo(out=out)

    assert code == 0, out.getvalue()
    assert "demo passed" in out.getvalue()
