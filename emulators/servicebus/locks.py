"""PeekLock locks: which lock token holds which message, and until when.

This module owns the lock table the broker consults for every settlement: taking a
lock on delivery, finding the message behind a token (a token whose lock has run out
counts a failed delivery and is lost), extending a lock, and expiring the locks whose
time has come. Locks outlive the link that took them, as on Service Bus. The broker
holds its lock around every call; times are on the broker's clock.
"""

from __future__ import annotations

import heapq
import uuid

from .entities import Store
from .errors import MessageLockLostError
from .model import Stored

__all__ = ["LockTable"]

_LOCK_LOST = (
    "The lock supplied is invalid. Either the lock expired, or the message has "
    "already been removed from the queue."
)


class LockTable:
    """Live lock tokens, each naming its store and sequence number."""

    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, tuple[Store, int]] = {}
        #: (lock expiry, lock token) per lock taken or renewed; lazily pruned.
        self._expiries: list[tuple[float, uuid.UUID]] = []

    def lock(self, store: Store, stored: Stored, now: float) -> None:
        """Lock ``stored`` with a fresh token for the store's lock duration."""
        token = uuid.uuid4()
        stored.lock_token = token
        stored.locked_until = now + store.lock_duration
        self._locks[token] = (store, stored.sequence_number)
        heapq.heappush(self._expiries, (stored.locked_until, token))

    def unlock(self, stored: Stored) -> None:
        if stored.lock_token is not None:
            self._locks.pop(stored.lock_token, None)
        stored.lock_token = None
        stored.locked_until = None

    def locked(self, token: uuid.UUID, now: float) -> tuple[Store, Stored]:
        """The message ``token`` locks. Raises ``MessageLockLostError`` if the token is
        unknown, settled or expired (an expired lock counts a failed delivery)."""
        entry = self._locks.get(token)
        if entry is None:
            raise MessageLockLostError(_LOCK_LOST)
        store, number = entry
        stored = store.messages.get(number)
        if stored is None or stored.lock_token != token:
            del self._locks[token]
            raise MessageLockLostError(_LOCK_LOST)
        if stored.locked_until is not None and stored.locked_until <= now:
            self.unlock(stored)
            store.failed_delivery(stored)
            raise MessageLockLostError(_LOCK_LOST)
        return store, stored

    def extend(self, token: uuid.UUID, stored: Stored, until: float) -> float:
        """Move a live lock's expiry to ``until``; returns it."""
        stored.locked_until = until
        heapq.heappush(self._expiries, (until, token))
        return until

    def expire_due(self, now: float) -> bool:
        """Release every lock that ran out by ``now``, counting a failed delivery for
        each. True if any message became available again (or was dead-lettered)."""
        changed = False
        while self._expiries and self._expiries[0][0] <= now:
            _, token = heapq.heappop(self._expiries)
            entry = self._locks.get(token)
            if entry is None:
                continue  # settled, or already expired
            store, number = entry
            locked = store.messages.get(number)
            if locked is None or locked.lock_token != token:
                del self._locks[token]
            elif locked.locked_until is not None and locked.locked_until <= now:
                self.unlock(locked)
                store.failed_delivery(locked)
                changed = True
            # else: renewed since; its newer heap entry will come up later
        return changed
