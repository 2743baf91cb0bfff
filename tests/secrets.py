"""Secret detection over everything the test suite logs and publishes.

``CAPTURE`` records every log record that reaches the root logger (all loggers, at
whatever levels the code under test configured) and every message any in-process Service
Bus emulator accepts (queues and topics, raw AMQP bytes: body and properties). The
session fixture in tests/conftest.py installs it, proves it works by injecting a fake
secret first (so the check cannot pass by capturing nothing), and fails the session if a
secret shows up anywhere.

Secrets looked for: IdentitySimulator bearer tokens (``sim-`` + 16 hex), any ``Bearer ``
string, the emulator's SAS key (``SAS_KEY_VALUE``), ``SharedAccessKey=...`` and SAS
signatures (``sig=...``).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CAPTURE", "SECRET_PATTERNS", "SecretCapture", "find_secrets"]

SECRET_PATTERNS = (
    re.compile(r"sim-[0-9a-f]{16}"),
    re.compile(r"Bearer\s"),
    re.compile(r"SAS_KEY_VALUE"),
    re.compile(r"SharedAccessKey=[^;\s'\"]+"),
    re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{8,}"),
)


def find_secrets(text: str) -> list[str]:
    """Every secret-looking substring of ``text``."""
    return [match.group(0) for pattern in SECRET_PATTERNS for match in pattern.finditer(text)]


@dataclass
class Finding:
    where: str
    secret: str
    excerpt: str


@dataclass
class SecretCapture(logging.Handler):
    """A logging handler (and message recorder) that keeps only what looks like a secret."""

    findings: list[Finding] = field(default_factory=list)
    records_seen: int = 0
    messages_seen: int = 0
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, level=logging.NOTSET)

    def __hash__(self) -> int:  # logging keeps handlers in sets/weakrefs
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.getMessage()]
        except Exception:  # noqa: BLE001 - a broken record is not ours to judge
            parts = [str(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
        extra = getattr(record, "ops_status", None)
        if extra is not None:
            parts.append(repr(extra))
        self._check(f"log {record.name}:{record.levelname}", " ".join(parts))
        with self._guard:
            self.records_seen += 1

    def check_message(self, address: str, raw: bytes) -> None:
        self._check(f"message on {address}", raw.decode("latin-1"))
        with self._guard:
            self.messages_seen += 1

    def _check(self, where: str, text: str) -> None:
        for secret in find_secrets(text):
            at = text.find(secret)
            with self._guard:
                self.findings.append(Finding(where, secret, text[max(0, at - 80) : at + 80]))

    def clear(self) -> None:
        with self._guard:
            self.findings.clear()

    def report(self) -> str:
        return "\n".join(f"- {f.where}: {f.secret!r} in ...{f.excerpt!r}..." for f in self.findings)


CAPTURE = SecretCapture()
_installed = False


def install() -> None:
    """Attach ``CAPTURE`` to the root logger and to every emulator broker's ``send``."""
    global _installed  # noqa: PLW0603 - once per process
    if _installed:
        return
    _installed = True
    logging.getLogger().addHandler(CAPTURE)

    from emulators.servicebus import broker as broker_module

    original = broker_module.Broker.send

    def recording_send(self: Any, address: str, messages: Any) -> list[int]:
        for message in messages:
            CAPTURE.check_message(address, bytes(message.raw))
        return original(self, address, messages)

    broker_module.Broker.send = recording_send  # type: ignore[method-assign]
