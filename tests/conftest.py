"""Fixtures shared by every test layer: sample files and validated settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops_status.settings import Settings, load_settings

SAMPLES = Path(__file__).parent / "samples"

BASE_ENVIRONMENT = {
    "OPS_STATUS_INTAKE_QUEUE": "intake",
    "OPS_STATUS_POLLS_QUEUE": "polls",
    "OPS_STATUS_EVENTS_TOPIC": "events",
    "ServiceBusConnection__fullyQualifiedNamespace": "contoso.servicebus.windows.net",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long flows (marked ``slow``) first: pytest-xdist hands tests out in collection
    order, so a two-minute flow collected last would run alone at the end of the suite."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def sample(name: str) -> Any:
    """A JSON sample from tests/samples, parsed."""
    return json.loads((SAMPLES / name).read_text())


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture
def settings() -> Settings:
    return load_settings(BASE_ENVIRONMENT)


# -- secrets: nothing the suite logs or publishes may carry a token or key ------------

from tests import secrets as _secrets  # noqa: E402

_secrets.install()


@pytest.fixture(scope="session", autouse=True)
def no_secrets_logged_or_published() -> Any:
    """Fails the session if any log record or published message carried a secret.

    Starts with a self-test: a fake token injected into a log record must be caught,
    so the check cannot pass by capturing nothing.
    """
    import logging

    probe = logging.getLogger("ops_status.secrets_self_test")
    probe.warning("self-test Authorization: Bearer sim-0123456789abcdef")
    caught = [f for f in _secrets.CAPTURE.findings if "secrets_self_test" in f.where]
    assert {f.secret for f in caught} >= {"Bearer ", "sim-0123456789abcdef"}, (
        "the secret detector did not see an injected secret"
    )
    _secrets.CAPTURE.clear()
    yield
    findings = _secrets.CAPTURE.report()
    assert not findings, f"secrets were logged or published:\n{findings}"
