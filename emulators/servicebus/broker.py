"""In-memory Service Bus namespace state: entities, messages, locks, schedules, dedupe.

This module owns the broker's *rules* and nothing about the wire: no proton, no
sockets, no threads of its own. Every public method takes one re-entrant lock, reads
the injected ``Clock`` and returns plain values, so the AMQP glue (``amqp.py``) can call
it from the reactor thread while tests inspect it from theirs.

Semantics follow Service Bus (Standard tier) where the SDK can observe them:

* Entities: queues, topics, subscriptions; each queue and subscription has a dead-letter
  sub-queue (``<path>/$DeadLetterQueue``). Names are case-insensitive.
* Sequence numbers are assigned by the queue or topic when a message is accepted (a
  topic's copies keep the topic's number), so scheduling returns them up front.
* Duplicate detection keys on MessageId within a per-entity window measured from the
  first acceptance; a duplicate is accepted (the sender sees success) and dropped.
  Scheduled messages count too.
* PeekLock: each delivery takes a fresh lock token; a lock expires after the entity's
  lock duration. Abandon or lock expiry counts a failed delivery (the AMQP header's
  delivery-count, which the Python SDK shows as ``delivery_count``); reaching
  ``max_delivery_count`` moves the message to the dead-letter queue with reason
  ``MaxDeliveryCountExceeded``. Release (the SDK's way to hand back a message it never
  showed anyone) unlocks without counting. Locks outlive the link that took them, as on
  Service Bus: a closed or dropped receiver's messages come back when their locks expire.
* Deferred messages leave the receivable set and are fetched by sequence number.
* ``active_count`` is Service Bus's ActiveMessageCount: active messages, locked or not.

Times are epoch seconds on the injected clock, which tests can move forward
(``Clock.advance``) to make schedules fall due and locks expire without sleeping. Every
time the broker reports (enqueued, locked-until, lock renewals) is on that clock. It is
never behind the wall clock, so the SDK's own client-side lock checks (which compare
locked-until with the wall clock) never fire before the broker's.

``Broker`` is the facade and the one lock; the state behind it lives in small modules:
``entities`` (queues, topics, subscriptions, addressing), ``locks`` (the PeekLock table),
``model`` (stored messages, deliveries, snapshots, the clock) and ``errors`` (the
refusals). Their public names are re-exported here.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from .codec import ParsedMessage
from .config import EmulatorConfig
from .entities import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    Ingress,
    Namespace,
    Queue,
    Store,
    Topic,
    entity_path,
)
from .errors import (
    BrokerError,
    EntityNotFoundError,
    MessageLockLostError,
    MessageNotFoundError,
    MessageSizeExceededError,
    NotAllowedError,
    SendRefusedError,
)
from .inspection import Inspection
from .locks import LockTable
from .model import Clock, Delivered, MessageState, MessageView, Stored

__all__ = [
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "Broker",
    "BrokerError",
    "Clock",
    "Delivered",
    "EntityNotFoundError",
    "MessageLockLostError",
    "MessageNotFoundError",
    "MessageSizeExceededError",
    "MessageState",
    "MessageView",
    "NotAllowedError",
    "SendRefusedError",
    "entity_path",
]


class Broker(Inspection):
    """A namespace's state. Thread-safe; every method is atomic. The read-only counts
    and snapshots tests use come from ``Inspection``."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock or Clock()
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._entities = Namespace(config)
        self._peek_locks = LockTable()
        #: (expiry, tiebreak, store, sequence number) of messages with a TTL; lazily pruned.
        self._expiries: list[tuple[float, int, Store, int]] = []
        self._expiry_tiebreak = 0
        self._last_purge = 0.0

    # -- addressing ---------------------------------------------------------------

    def check_sendable(self, address: str) -> str:
        """The entity path if senders may attach to ``address``; raises otherwise."""
        with self._lock:
            return self._entities.ingress(address).path

    def check_receivable(self, address: str) -> str:
        """The store path if receivers may attach to ``address``; raises otherwise."""
        with self._lock:
            return self._entities.store(address).path

    def check_management(self, address: str) -> str:
        """The entity path of a ``<entity>/$management`` node; raises if unknown."""
        with self._lock:
            resolved = self._entities.resolve(address)
            if not resolved.management:
                raise EntityNotFoundError(f"'{address}' is not a management node.")
            return resolved.path.rsplit("/", 1)[0]

    def max_message_size(self, address: str) -> int:
        with self._lock:
            return self._entities.ingress(address).max_message_size

    def entity_paths(self) -> list[str]:
        """Every addressable entity, for banners and help text."""
        with self._lock:
            return self._entities.paths()

    # -- sending ------------------------------------------------------------------

    def send(self, address: str, messages: Sequence[ParsedMessage]) -> list[int]:
        """Accept messages (one transfer or one schedule request) for a queue or topic.

        Returns one sequence number per message, duplicates included: the sender cannot
        tell a dropped duplicate from an enqueued message, as on Service Bus. Messages
        carrying a future ``x-opt-scheduled-enqueue-time`` are held until then.
        """
        with self._lock:
            ingress = self._entities.ingress(address)
            self._check_fault(ingress)
            now = self.clock.now()
            numbers: list[int] = []
            for message in messages:
                number = ingress.next_sequence_number()
                numbers.append(number)
                ingress.sent += 1
                if ingress.is_duplicate(message.properties.message_id, now):
                    ingress.dropped += 1
                    continue
                scheduled = message.scheduled_enqueue_time
                stored = Stored(
                    message=message,
                    sequence_number=number,
                    enqueued_time=now,
                    scheduled_time=scheduled,
                )
                if scheduled is not None and scheduled > now:
                    stored.state = MessageState.SCHEDULED
                    ingress.scheduled[number] = stored
                    heapq.heappush(ingress.schedule_heap, (scheduled, number))
                else:
                    self._route(ingress, stored)
            return numbers

    def cancel_scheduled(self, address: str, sequence_numbers: Iterable[int]) -> None:
        with self._lock:
            ingress = self._entities.ingress(address)
            numbers = list(sequence_numbers)
            missing = [n for n in numbers if n not in ingress.scheduled]
            if missing:
                raise MessageNotFoundError(
                    f"No scheduled message with sequence number(s) {missing} in '{ingress.path}'."
                )
            for number in numbers:
                del ingress.scheduled[number]

    def _check_fault(self, ingress: Ingress) -> None:
        refused = False
        if ingress.refuse_remaining > 0:
            ingress.refuse_remaining -= 1
            refused = True
        elif self._monotonic() < ingress.refuse_until:
            refused = True
        if refused:
            ingress.refused += 1
            raise SendRefusedError(
                f"Injected fault: the emulator refused a send to '{ingress.path}'."
            )

    def _route(self, ingress: Ingress, stored: Stored) -> None:
        if isinstance(ingress, Queue):
            self._enqueue(ingress.store, stored, ingress.time_to_live)
        elif isinstance(ingress, Topic):
            for sub in ingress.subscriptions.values():
                if sub.matches(stored.message):
                    self._enqueue(sub.store, replace(stored), ingress.time_to_live)

    def _enqueue(self, store: Store, stored: Stored, entity_ttl: float | None) -> None:
        stored.state = MessageState.ACTIVE
        header = stored.message.header
        ttls = [t for t in (entity_ttl, store.time_to_live) if t is not None]
        if header is not None and header.ttl_ms is not None:
            ttls.append(header.ttl_ms / 1000.0)
        stored.expires_at = stored.enqueued_time + min(ttls) if ttls else None
        store.add(stored)
        if stored.expires_at is not None:
            self._expiry_tiebreak += 1
            heapq.heappush(
                self._expiries,
                (stored.expires_at, self._expiry_tiebreak, store, stored.sequence_number),
            )

    # -- receiving ----------------------------------------------------------------

    def has_available(self, address: str) -> bool:
        with self._lock:
            return bool(self._entities.store(address).available)

    def receive(self, address: str, *, peek_lock: bool) -> Delivered | None:
        """Take the next available message: lock it (PeekLock) or remove it
        (ReceiveAndDelete). None when nothing is available."""
        with self._lock:
            store = self._entities.store(address)
            now = self.clock.now()
            while store.available:
                number = store.available.pop(0)
                stored = store.messages[number]
                if stored.expires_at is not None and stored.expires_at <= now:
                    store.expire(stored)
                    continue
                if peek_lock:
                    self._peek_locks.lock(store, stored, now)
                else:
                    del store.messages[number]
                return Delivered.of(stored)
            return None

    def peek(self, address: str, from_sequence_number: int, count: int) -> list[Delivered]:
        """Browse without locking: active, locked, deferred and (for a queue) scheduled
        messages from ``from_sequence_number`` on, in sequence order."""
        with self._lock:
            resolved = self._entities.resolve(address)
            if resolved.store is None:
                raise NotAllowedError(f"Cannot peek topic '{resolved.path}'.")
            now = self.clock.now()
            candidates = [
                s
                for s in resolved.store.messages.values()
                if s.expires_at is None or s.expires_at > now
            ]
            if resolved.ingress is not None:
                candidates.extend(resolved.ingress.scheduled.values())
            chosen = sorted(
                (s for s in candidates if s.sequence_number >= from_sequence_number),
                key=lambda s: s.sequence_number,
            )[: max(count, 0)]
            return [Delivered.of(s) for s in chosen]

    def receive_deferred(
        self, address: str, sequence_numbers: Iterable[int], *, peek_lock: bool
    ) -> list[Delivered]:
        with self._lock:
            store = self._entities.store(address)
            now = self.clock.now()
            numbers = list(sequence_numbers)
            chosen: list[Stored] = []
            for number in numbers:
                stored = store.messages.get(number)
                if stored is None or stored.state is not MessageState.DEFERRED:
                    raise MessageNotFoundError(
                        f"No deferred message with sequence number {number} in '{store.path}'."
                    )
                if stored.lock_token is not None and (stored.locked_until or 0) > now:
                    raise MessageNotFoundError(
                        f"The deferred message {number} in '{store.path}' is locked."
                    )
                chosen.append(stored)
            out: list[Delivered] = []
            for stored in chosen:
                if stored.lock_token is not None:
                    self._peek_locks.unlock(stored)
                if peek_lock:
                    self._peek_locks.lock(store, stored, now)
                else:
                    store.remove(stored.sequence_number)
                out.append(Delivered.of(stored))
            return out

    # -- settlement ----------------------------------------------------------------

    def is_locked(self, token: uuid.UUID) -> bool:
        """Whether ``token`` is a live lock (not expired, not settled)."""
        with self._lock:
            try:
                self._peek_locks.locked(token, self.clock.now())
            except MessageLockLostError:
                return False
            return True

    def complete(self, token: uuid.UUID) -> None:
        with self._lock:
            store, stored = self._peek_locks.locked(token, self.clock.now())
            self._peek_locks.unlock(stored)
            store.remove(stored.sequence_number)

    def abandon(self, token: uuid.UUID) -> None:
        with self._lock:
            store, stored = self._peek_locks.locked(token, self.clock.now())
            self._peek_locks.unlock(stored)
            store.failed_delivery(stored)

    def release(self, token: uuid.UUID) -> None:
        """Unlock without counting a delivery (AMQP ``released``). A lost lock is a no-op:
        there is nothing left to give back."""
        with self._lock:
            try:
                store, stored = self._peek_locks.locked(token, self.clock.now())
            except MessageLockLostError:
                return
            self._peek_locks.unlock(stored)
            store.make_available(stored)

    def defer(self, token: uuid.UUID) -> None:
        with self._lock:
            _, stored = self._peek_locks.locked(token, self.clock.now())
            self._peek_locks.unlock(stored)
            stored.state = MessageState.DEFERRED

    def dead_letter(
        self, token: uuid.UUID, reason: str | None = None, description: str | None = None
    ) -> None:
        with self._lock:
            store, stored = self._peek_locks.locked(token, self.clock.now())
            if store.dead_letter is None:
                raise NotAllowedError("A message in a dead-letter queue cannot be dead-lettered.")
            self._peek_locks.unlock(stored)
            store.move_to_dead_letter(stored, reason, description)

    def renew_lock(self, token: uuid.UUID) -> float:
        """Extend a lock by the entity's lock duration; returns the new expiry."""
        with self._lock:
            store, stored = self._peek_locks.locked(token, self.clock.now())
            return self._peek_locks.extend(token, stored, self.clock.now() + store.lock_duration)

    # -- time -----------------------------------------------------------------------

    def tick(self) -> bool:
        """Apply the passage of time: scheduled messages falling due, locks expiring,
        messages outliving their TTL, dedupe windows closing. True if any message
        became available (the glue then offers messages to waiting receivers)."""
        with self._lock:
            now = self.clock.now()
            changed = False
            # Heaps keep a tick cheap however many messages wait: the product schedules
            # every watch into the future, and the reactor ticks 40 times a second.
            for ingress in self._entities.ingresses():
                heap = ingress.schedule_heap
                while heap and heap[0][0] <= now:
                    _, number = heapq.heappop(heap)
                    falling_due = ingress.scheduled.pop(number, None)
                    if falling_due is None:
                        continue  # cancelled
                    # Service Bus reports a scheduled message's enqueue time as its schedule.
                    falling_due.enqueued_time = falling_due.scheduled_time or now
                    self._route(ingress, falling_due)
                    changed = True
            if self._peek_locks.expire_due(now):
                changed = True
            while self._expiries and self._expiries[0][0] <= now:
                expires_at, _, store, number = heapq.heappop(self._expiries)
                expiring = store.messages.get(number)
                # A locked message expires when it is next taken (see ``receive``); one
                # that was settled, or copied elsewhere, is no longer this entry's.
                if (
                    expiring is not None
                    and expiring.expires_at == expires_at
                    and expiring.lock_token is None
                    and expiring.state is MessageState.ACTIVE
                ):
                    store.expire(expiring)
            if now - self._last_purge > 1.0:
                self._last_purge = now
                for ingress in self._entities.ingresses():
                    ingress.purge_seen(now)
            return changed

    # -- fault injection ------------------------------------------------------------

    def refuse_sends(
        self, address: str, *, count: int | None = None, for_seconds: float | None = None
    ) -> None:
        """Reject the next ``count`` sends, and/or every send for ``for_seconds`` (real
        time), to a queue or topic. ``count=0`` (alone) clears the fault."""
        if count is None and for_seconds is None:
            raise ValueError("give count=N and/or for_seconds=S")
        with self._lock:
            ingress = self._entities.ingress(address)
            ingress.refuse_remaining = max(count or 0, 0)
            ingress.refuse_until = self._monotonic() + for_seconds if for_seconds else 0.0
