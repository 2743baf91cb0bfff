"""Fixtures shared by every test layer: sample files and validated settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops_status.settings import Settings, load_settings

SAMPLES = Path(__file__).parent / "samples"

BASE_ENVIRONMENT = {
    "OPS_STATUS_WATCH_QUEUE": "watches",
    "OPS_STATUS_EVENTS_TOPIC": "events",
    "ServiceBusConnection__fullyQualifiedNamespace": "contoso.servicebus.windows.net",
}


def sample(name: str) -> Any:
    """A JSON sample from tests/samples, parsed."""
    return json.loads((SAMPLES / name).read_text())


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture
def settings() -> Settings:
    return load_settings(BASE_ENVIRONMENT)
