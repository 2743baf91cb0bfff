"""The package's public surface is exactly what ``__all__`` lists."""

from __future__ import annotations

import ops_status


def test_all_lists_exactly_the_public_names() -> None:
    # `annotations` is the `from __future__ import annotations` feature flag, not an export.
    public = {n for n in dir(ops_status) if not n.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(ops_status, name)).__name__ == "module"}

    assert set(ops_status.__all__) - {"__version__"} == public - modules


def test_every_exported_name_resolves() -> None:
    for name in ops_status.__all__:
        assert getattr(ops_status, name) is not None
