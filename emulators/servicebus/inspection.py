"""Read-only views of the broker's state, for tests, tools and the emulator's facade.

This module owns ``Inspection``, mixed into ``Broker``: counts per entity (active,
locked, deferred, scheduled, dead-lettered, sent, dropped as duplicates, refused) and
``MessageView`` snapshots. Nothing here changes state or is called by the AMQP glue;
every method takes the broker's lock.
"""

from __future__ import annotations

import threading

from .entities import Namespace, Store
from .model import MessageState, MessageView

__all__ = ["Inspection"]


class Inspection:
    """The inspection half of ``Broker``; it reads the state ``Broker`` sets up."""

    _lock: threading.RLock
    _entities: Namespace

    def _inspect_store(self, address: str) -> Store:
        resolved = self._entities.resolve(address)
        if resolved.store is None:
            raise ValueError(
                f"'{resolved.path}' is a topic: topics hold no messages, inspect a subscription"
            )
        return resolved.store

    def active_count(self, address: str) -> int:
        with self._lock:
            store = self._inspect_store(address)
            return sum(1 for s in store.messages.values() if s.state is MessageState.ACTIVE)

    def locked_count(self, address: str) -> int:
        with self._lock:
            store = self._inspect_store(address)
            return sum(1 for s in store.messages.values() if s.lock_token is not None)

    def deferred_count(self, address: str) -> int:
        with self._lock:
            store = self._inspect_store(address)
            return sum(1 for s in store.messages.values() if s.state is MessageState.DEFERRED)

    def scheduled_count(self, address: str) -> int:
        with self._lock:
            resolved = self._entities.resolve(address)
            return len(resolved.ingress.scheduled) if resolved.ingress is not None else 0

    def dead_letter_count(self, address: str) -> int:
        with self._lock:
            store = self._inspect_store(address)
            if store.dead_letter is None:
                raise ValueError(f"'{store.path}' is itself a dead-letter queue")
            return len(store.dead_letter.messages)

    def peek_all(self, address: str) -> list[MessageView]:
        """Every message an entity holds (scheduled ones too), in sequence order."""
        with self._lock:
            resolved = self._entities.resolve(address)
            stored = list(resolved.store.messages.values()) if resolved.store else []
            if resolved.ingress is not None:
                stored.extend(resolved.ingress.scheduled.values())
            return [MessageView.of(s) for s in sorted(stored, key=lambda s: s.sequence_number)]

    def dead_letters(self, address: str) -> list[MessageView]:
        with self._lock:
            store = self._inspect_store(address)
            if store.dead_letter is None:
                raise ValueError(f"'{store.path}' is itself a dead-letter queue")
            return self.peek_all(store.dead_letter.path)

    def sent_count(self, address: str) -> int:
        """Messages accepted from senders (queue/topic; duplicates included), or copies
        delivered into a subscription / dead-letter queue."""
        with self._lock:
            resolved = self._entities.resolve(address)
            if resolved.ingress is not None:
                return resolved.ingress.sent
            assert resolved.store is not None
            return resolved.store.enqueued_total

    def duplicates_dropped(self, address: str) -> int:
        with self._lock:
            resolved = self._entities.resolve(address)
            return resolved.ingress.dropped if resolved.ingress is not None else 0

    def refused_count(self, address: str) -> int:
        with self._lock:
            return self._entities.ingress(address).refused
