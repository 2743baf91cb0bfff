"""What the product tried: every send counted at the ``Outputs`` seam, beside the broker.

Duplicate detection hides repeats (a step that ran twice sends twice and the broker
keeps one), so the worker's output client is wrapped (``CountingOutputs``) and the
tables put its attempts beside what the emulator received, dropped and kept.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emulators.stack import EVENTS_TOPIC, POLLS_QUEUE, LocalStack
from ops_status.events import OutboundMessage
from ops_status.servicebus import Outputs

from .config import (
    ENTITIES,
)


class CountingOutputs:
    """The real ``Outputs``, with every send it is asked for appended to ``path``.

    A line ``{entity}\\ttry\\t{message id}`` before the call and ``ok`` or ``fail`` after
    it, written with ``O_APPEND`` straight to the file (no buffer), so a process killed
    mid-run leaves every attempt it made on disk. ``after_send`` runs after a successful
    send (the crashing worker dies there).
    """

    def __init__(
        self,
        inner: Outputs,
        path: Path,
        *,
        after_send: Callable[[str, OutboundMessage], None] | None = None,
    ) -> None:
        self._inner = inner
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._after_send = after_send

    def schedule_poll(self, message: OutboundMessage, enqueue_at: datetime) -> None:
        self._send("polls", message, lambda: self._inner.schedule_poll(message, enqueue_at))

    def send_event(self, message: OutboundMessage) -> None:
        self._send("topic", message, lambda: self._inner.send_event(message))

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
        os.close(self._fd)

    def _send(self, entity: str, message: OutboundMessage, send: Callable[[], None]) -> None:
        self._record(entity, "try", message.message_id)
        try:
            send()
        except BaseException:
            self._record(entity, "fail", message.message_id)
            raise
        self._record(entity, "ok", message.message_id)
        if self._after_send is not None:
            self._after_send(entity, message)

    def _record(self, entity: str, what: str, message_id: str) -> None:
        os.write(self._fd, f"{entity}\t{what}\t{message_id}\n".encode())


@dataclass
class SeamCounts:
    """What the product asked its output client to send, per entity ("polls", "topic")."""

    tried: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def read(cls, path: Path) -> SeamCounts:
        counts = cls()
        if not path.exists():
            return counts
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue  # a line cut by a kill
            entity, what, message_id = parts
            {"try": counts.tried, "ok": counts.ok, "fail": counts.failed}[what][entity] += 1
            if what == "try":
                counts.ids[entity].add(message_id)
        return counts

    def distinct(self, entity: str) -> int:
        return len(self.ids.get(entity, ()))


@dataclass
class EntitySends:
    """Attempted vs kept, for one entity the product sends to."""

    tried: int
    """Sends the product asked for (``CountingOutputs``), repeats included."""
    ok: int
    failed: int
    distinct_ids: int
    """Different MessageIds among them: what duplicate detection should reduce them to."""
    received: int
    """Messages the broker accepted (SDK retries of an unacknowledged send included)."""
    dropped: int
    """Dropped as duplicates by the broker."""
    kept_twice: int
    """MessageIds the broker kept more than once (a repeat outside the window)."""

    @property
    def kept(self) -> int:
        return self.received - self.dropped


def entity_sends(
    stack: LocalStack, seam: SeamCounts, kept_twice: dict[str, int]
) -> dict[str, EntitySends]:
    return {
        name: EntitySends(
            tried=seam.tried[name],
            ok=seam.ok[name],
            failed=seam.failed[name],
            distinct_ids=seam.distinct(name),
            received=stack.servicebus.sent_count(entity),
            dropped=stack.servicebus.duplicates_dropped(entity),
            kept_twice=kept_twice.get(name, 0),
        )
        for name, entity in ENTITIES.items()
    }


def sends_table(sends: dict[str, EntitySends]) -> str:
    header = (
        "| entity | tried (Outputs) | ok / failed at the seam | distinct MessageIds "
        "| received by the broker | duplicates dropped | kept | MessageIds kept twice |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    names = {"polls": f"polls queue ({POLLS_QUEUE})", "topic": f"topic ({EVENTS_TOPIC})"}
    for name, s in sends.items():
        lines.append(
            f"| {names[name]} | {s.tried} | {s.ok} / {s.failed} | {s.distinct_ids} | "
            f"{s.received} | {s.dropped} | {s.kept} | {s.kept_twice} |"
        )
    return "\n".join(lines)
