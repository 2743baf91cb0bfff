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
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import heapq
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .codec import ParsedMessage, to_plain
from .config import (
    SYSTEM_FILTER_KEYS,
    EmulatorConfig,
    QueueConfig,
    SubscriptionConfig,
    TopicConfig,
)

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

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
TTL_EXPIRED = "TTLExpiredException"
DEAD_LETTER_QUEUE = "$deadletterqueue"
MANAGEMENT = "$management"


class BrokerError(Exception):
    """A refusal the broker reports to a client, with the AMQP error condition to use."""

    condition = "amqp:internal-error"
    status_code = 500

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class EntityNotFoundError(BrokerError, KeyError):
    condition = "amqp:not-found"
    status_code = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return self.description


class NotAllowedError(BrokerError):
    condition = "amqp:not-allowed"
    status_code = 400


class MessageLockLostError(BrokerError):
    condition = "com.microsoft:message-lock-lost"
    status_code = 410


class MessageNotFoundError(BrokerError):
    condition = "com.microsoft:message-not-found"
    status_code = 404


class SendRefusedError(BrokerError):
    """An injected fault (``refuse_sends``): Service Bus's transient internal error."""

    condition = "amqp:internal-error"
    status_code = 500


class MessageSizeExceededError(BrokerError):
    condition = "amqp:link:message-size-exceeded"
    status_code = 413


class Clock:
    """Wall-clock time plus an offset tests can advance (virtual time)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._wall() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds


class MessageState(str, enum.Enum):
    ACTIVE = "active"
    DEFERRED = "deferred"
    SCHEDULED = "scheduled"

    @property
    def wire_value(self) -> int:
        """``x-opt-message-state`` as the SDK's ``ServiceBusMessageState`` reads it."""
        return {"active": 0, "deferred": 1, "scheduled": 2}[self.value]


@dataclass
class _Stored:
    message: ParsedMessage
    sequence_number: int
    enqueued_time: float
    scheduled_time: float | None = None
    state: MessageState = MessageState.ACTIVE
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float | None = None
    expires_at: float | None = None
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None


@dataclass(frozen=True)
class Delivered:
    """A message handed to the glue for one delivery or one peek/management reply."""

    message: ParsedMessage
    sequence_number: int
    enqueued_time: float
    delivery_count: int
    state: MessageState
    lock_token: uuid.UUID | None
    locked_until: float | None
    scheduled_time: float | None
    dead_letter_reason: str | None
    dead_letter_error_description: str | None


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


@dataclass(frozen=True)
class MessageView:
    """A read-only snapshot of a stored message, for tests and tools. Times are UTC on
    the broker's (possibly advanced) clock."""

    sequence_number: int
    body: bytes
    body_value: Any
    message_id: Any
    correlation_id: Any
    subject: str | None
    content_type: str | None
    to: str | None
    reply_to: str | None
    session_id: str | None
    application_properties: Mapping[str, Any]
    time_to_live: float | None
    enqueued_time: dt.datetime | None
    scheduled_enqueue_time: dt.datetime | None
    delivery_count: int
    state: MessageState
    locked_until: dt.datetime | None
    lock_token: uuid.UUID | None
    dead_letter_reason: str | None
    dead_letter_error_description: str | None
    raw: bytes

    @property
    def text(self) -> str:
        """The data body decoded as UTF-8."""
        return self.body.decode("utf-8")

    @property
    def is_locked(self) -> bool:
        return self.lock_token is not None

    @classmethod
    def of(cls, stored: _Stored) -> MessageView:
        m = stored.message
        ttl = m.header.ttl_ms if m.header is not None else None
        return cls(
            sequence_number=stored.sequence_number,
            body=m.body_bytes,
            body_value=to_plain(m.body_value),
            message_id=to_plain(m.properties.message_id),
            correlation_id=to_plain(m.properties.correlation_id),
            subject=m.properties.subject,
            content_type=m.properties.content_type,
            to=m.properties.to,
            reply_to=m.properties.reply_to,
            session_id=m.properties.group_id,
            application_properties=to_plain(dict(m.application_properties)),
            time_to_live=None if ttl is None else ttl / 1000.0,
            enqueued_time=None
            if stored.state is MessageState.SCHEDULED
            else _utc(stored.enqueued_time),
            scheduled_enqueue_time=_utc(stored.scheduled_time),
            delivery_count=stored.delivery_count,
            state=stored.state,
            locked_until=_utc(stored.locked_until),
            lock_token=stored.lock_token,
            dead_letter_reason=stored.dead_letter_reason,
            dead_letter_error_description=stored.dead_letter_error_description,
            raw=m.raw,
        )


class _Store:
    """Something receivable: a queue, a subscription, or a dead-letter queue."""

    def __init__(
        self,
        path: str,
        *,
        lock_duration: float,
        max_delivery_count: int,
        time_to_live: float | None,
        dead_letter_on_expiration: bool,
        is_dead_letter: bool = False,
    ) -> None:
        self.path = path
        self.lock_duration = lock_duration
        self.max_delivery_count = max_delivery_count
        self.time_to_live = time_to_live
        self.dead_letter_on_expiration = dead_letter_on_expiration
        self.messages: dict[int, _Stored] = {}
        #: sequence numbers of active, unlocked messages, ascending (delivery order).
        self.available: list[int] = []
        self.enqueued_total = 0
        self.dead_letter: _Store | None = None
        if not is_dead_letter:
            self.dead_letter = _Store(
                f"{path}/$DeadLetterQueue",
                lock_duration=lock_duration,
                max_delivery_count=max_delivery_count,
                time_to_live=None,
                dead_letter_on_expiration=False,
                is_dead_letter=True,
            )

    def add(self, stored: _Stored) -> None:
        self.messages[stored.sequence_number] = stored
        if stored.state is MessageState.ACTIVE and stored.lock_token is None:
            bisect.insort(self.available, stored.sequence_number)
        self.enqueued_total += 1

    def make_available(self, stored: _Stored) -> None:
        if stored.state is MessageState.ACTIVE:
            bisect.insort(self.available, stored.sequence_number)

    def remove(self, sequence_number: int) -> None:
        self.messages.pop(sequence_number, None)
        index = bisect.bisect_left(self.available, sequence_number)
        if index < len(self.available) and self.available[index] == sequence_number:
            del self.available[index]


class _Ingress:
    """Where senders send: a queue or a topic (sequence numbers, dedupe, schedules)."""

    def __init__(
        self,
        path: str,
        *,
        duplicate_detection_window: float | None,
        time_to_live: float | None,
        max_message_size: int,
    ) -> None:
        self.path = path
        self.window = duplicate_detection_window
        self.time_to_live = time_to_live
        self.max_message_size = max_message_size
        self.last_sequence_number = 0
        self.scheduled: dict[int, _Stored] = {}
        #: (scheduled time, sequence number), lazily pruned: cancelled ones stay until popped.
        self.schedule_heap: list[tuple[float, int]] = []
        self.seen_ids: dict[str, float] = {}  # MessageId -> end of its dedupe window
        self.sent = 0
        self.dropped = 0
        self.refused = 0
        self.refuse_remaining = 0
        self.refuse_until = 0.0  # monotonic

    def next_sequence_number(self) -> int:
        self.last_sequence_number += 1
        return self.last_sequence_number

    def is_duplicate(self, message_id: Any, now: float) -> bool:
        """Record ``message_id``; True if it was already seen inside the window."""
        if self.window is None or message_id is None:
            return False
        key = str(to_plain(message_id))
        until = self.seen_ids.get(key)
        if until is not None and until > now:
            return True
        self.seen_ids[key] = now + self.window
        return False

    def purge_seen(self, now: float) -> None:
        expired = [key for key, until in self.seen_ids.items() if until <= now]
        for key in expired:
            del self.seen_ids[key]


class _Queue(_Ingress):
    def __init__(self, name: str, config: QueueConfig) -> None:
        super().__init__(
            name,
            duplicate_detection_window=config.duplicate_detection_window,
            time_to_live=config.default_message_time_to_live,
            max_message_size=config.max_message_size,
        )
        self.config = config
        self.store = _Store(
            name,
            lock_duration=config.lock_duration,
            max_delivery_count=config.max_delivery_count,
            time_to_live=config.default_message_time_to_live,
            dead_letter_on_expiration=config.dead_lettering_on_message_expiration,
        )


class _Subscription:
    def __init__(self, topic: str, name: str, config: SubscriptionConfig) -> None:
        self.name = name
        self.filter = dict(config.filter) if config.filter is not None else None
        self.store = _Store(
            f"{topic}/subscriptions/{name}",
            lock_duration=config.lock_duration,
            max_delivery_count=config.max_delivery_count,
            time_to_live=config.default_message_time_to_live,
            dead_letter_on_expiration=config.dead_lettering_on_message_expiration,
        )

    def matches(self, message: ParsedMessage) -> bool:
        if not self.filter:
            return True
        for key, expected in self.filter.items():
            if key.lower().startswith("sys."):
                actual = getattr(message.properties, SYSTEM_FILTER_KEYS[key[4:].lower()])
            else:
                actual = _lookup(message.application_properties, key)
            if not _equal(actual, expected):
                return False
        return True


def _lookup(properties: Mapping[Any, Any], key: str) -> Any:
    for name, value in properties.items():
        if str(name) == key:
            return value
    return None


def _equal(actual: Any, expected: Any) -> bool:
    """Correlation-filter equality: same value; booleans never equal numbers; a string
    filter value also matches a UUID/binary id by its text."""
    if actual is None:
        return expected is None
    actual = to_plain(actual)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, str) and isinstance(actual, uuid.UUID):
        return str(actual) == expected
    if isinstance(expected, str) and isinstance(actual, bytes):
        return actual.decode("utf-8", "replace") == expected
    return bool(actual == expected)


class _Topic(_Ingress):
    def __init__(self, name: str, config: TopicConfig) -> None:
        super().__init__(
            name,
            duplicate_detection_window=config.duplicate_detection_window,
            time_to_live=config.default_message_time_to_live,
            max_message_size=config.max_message_size,
        )
        self.config = config
        self.subscriptions = {
            sub_name.lower(): _Subscription(name, sub_name, sub_config)
            for sub_name, sub_config in config.subscriptions.items()
        }


@dataclass(frozen=True)
class _Address:
    path: str
    ingress: _Ingress | None  # set for a queue or a topic
    store: _Store | None  # set for a queue, subscription or dead-letter queue
    management: bool


def entity_path(address: str) -> str:
    """The entity path of an AMQP address: ``amqps://host:port/a/b`` -> ``a/b``."""
    if "://" in address:
        address = address.split("://", 1)[1].partition("/")[2]
    return address.strip("/")


class Broker:
    """A namespace's state. Thread-safe; every method is atomic."""

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
        self._queues = {name.lower(): _Queue(name, cfg) for name, cfg in config.queues.items()}
        self._topics = {name.lower(): _Topic(name, cfg) for name, cfg in config.topics.items()}
        self._locks: dict[uuid.UUID, tuple[_Store, int]] = {}
        #: (expiry, tiebreak, store, sequence number) of messages with a TTL; lazily pruned.
        self._expiries: list[tuple[float, int, _Store, int]] = []
        #: (lock expiry, lock token) per lock taken or renewed; lazily pruned.
        self._lock_expiries: list[tuple[float, uuid.UUID]] = []
        self._expiry_tiebreak = 0
        self._last_purge = 0.0

    # -- addressing ---------------------------------------------------------------

    def _resolve(self, address: str) -> _Address:
        path = entity_path(address)
        parts = [p for p in path.split("/") if p]
        lowered = [p.lower() for p in parts]
        management = bool(lowered) and lowered[-1] == MANAGEMENT
        if management:
            lowered = lowered[:-1]
        dead_letter = bool(lowered) and lowered[-1] == DEAD_LETTER_QUEUE
        if dead_letter:
            lowered = lowered[:-1]
        ingress: _Ingress | None = None
        store: _Store | None = None
        if len(lowered) == 1 and lowered[0] in self._queues:
            queue = self._queues[lowered[0]]
            ingress, store = queue, queue.store
        elif len(lowered) == 1 and lowered[0] in self._topics and not dead_letter:
            ingress = self._topics[lowered[0]]
        elif len(lowered) == 3 and lowered[1] == "subscriptions" and lowered[0] in self._topics:
            sub = self._topics[lowered[0]].subscriptions.get(lowered[2])
            if sub is not None:
                store = sub.store
        if ingress is None and store is None:
            raise EntityNotFoundError(f"The messaging entity '{path}' could not be found.")
        if dead_letter:
            assert store is not None
            assert store.dead_letter is not None
            ingress, store = None, store.dead_letter
        return _Address(path=path, ingress=ingress, store=store, management=management)

    def _ingress(self, address: str) -> _Ingress:
        resolved = self._resolve(address)
        if resolved.ingress is None:
            raise NotAllowedError(
                f"Cannot send to '{resolved.path}': only queues and topics accept messages."
            )
        return resolved.ingress

    def _store(self, address: str) -> _Store:
        resolved = self._resolve(address)
        if resolved.store is None:
            raise NotAllowedError(
                f"Cannot receive from topic '{resolved.path}': receive from a subscription."
            )
        return resolved.store

    def check_sendable(self, address: str) -> str:
        """The entity path if senders may attach to ``address``; raises otherwise."""
        with self._lock:
            return self._ingress(address).path

    def check_receivable(self, address: str) -> str:
        """The store path if receivers may attach to ``address``; raises otherwise."""
        with self._lock:
            return self._store(address).path

    def check_management(self, address: str) -> str:
        """The entity path of a ``<entity>/$management`` node; raises if unknown."""
        with self._lock:
            resolved = self._resolve(address)
            if not resolved.management:
                raise EntityNotFoundError(f"'{address}' is not a management node.")
            return resolved.path.rsplit("/", 1)[0]

    def max_message_size(self, address: str) -> int:
        with self._lock:
            return self._ingress(address).max_message_size

    def entity_paths(self) -> list[str]:
        """Every addressable entity, for banners and help text."""
        with self._lock:
            paths = [q.path for q in self._queues.values()]
            for topic in self._topics.values():
                paths.append(topic.path)
                paths.extend(s.store.path for s in topic.subscriptions.values())
            return paths

    # -- sending ------------------------------------------------------------------

    def send(self, address: str, messages: Sequence[ParsedMessage]) -> list[int]:
        """Accept messages (one transfer or one schedule request) for a queue or topic.

        Returns one sequence number per message, duplicates included: the sender cannot
        tell a dropped duplicate from an enqueued message, as on Service Bus. Messages
        carrying a future ``x-opt-scheduled-enqueue-time`` are held until then.
        """
        with self._lock:
            ingress = self._ingress(address)
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
                stored = _Stored(
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
            ingress = self._ingress(address)
            numbers = list(sequence_numbers)
            missing = [n for n in numbers if n not in ingress.scheduled]
            if missing:
                raise MessageNotFoundError(
                    f"No scheduled message with sequence number(s) {missing} in '{ingress.path}'."
                )
            for number in numbers:
                del ingress.scheduled[number]

    def _check_fault(self, ingress: _Ingress) -> None:
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

    def _route(self, ingress: _Ingress, stored: _Stored) -> None:
        if isinstance(ingress, _Queue):
            self._enqueue(ingress.store, stored, ingress.time_to_live)
        elif isinstance(ingress, _Topic):
            for sub in ingress.subscriptions.values():
                if sub.matches(stored.message):
                    self._enqueue(sub.store, replace(stored), ingress.time_to_live)

    def _enqueue(self, store: _Store, stored: _Stored, entity_ttl: float | None) -> None:
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
            return bool(self._store(address).available)

    def receive(self, address: str, *, peek_lock: bool) -> Delivered | None:
        """Take the next available message: lock it (PeekLock) or remove it
        (ReceiveAndDelete). None when nothing is available."""
        with self._lock:
            store = self._store(address)
            now = self.clock.now()
            while store.available:
                number = store.available.pop(0)
                stored = store.messages[number]
                if stored.expires_at is not None and stored.expires_at <= now:
                    self._expire(store, stored)
                    continue
                if peek_lock:
                    self._lock_message(store, stored, now)
                else:
                    del store.messages[number]
                return self._delivered(stored)
            return None

    def _lock_message(self, store: _Store, stored: _Stored, now: float) -> None:
        token = uuid.uuid4()
        stored.lock_token = token
        stored.locked_until = now + store.lock_duration
        self._locks[token] = (store, stored.sequence_number)
        heapq.heappush(self._lock_expiries, (stored.locked_until, token))

    def _delivered(self, stored: _Stored) -> Delivered:
        return Delivered(
            message=stored.message,
            sequence_number=stored.sequence_number,
            enqueued_time=stored.enqueued_time,
            delivery_count=stored.delivery_count,
            state=stored.state,
            lock_token=stored.lock_token,
            locked_until=stored.locked_until,
            scheduled_time=stored.scheduled_time,
            dead_letter_reason=stored.dead_letter_reason,
            dead_letter_error_description=stored.dead_letter_error_description,
        )

    def peek(self, address: str, from_sequence_number: int, count: int) -> list[Delivered]:
        """Browse without locking: active, locked, deferred and (for a queue) scheduled
        messages from ``from_sequence_number`` on, in sequence order."""
        with self._lock:
            resolved = self._resolve(address)
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
            return [self._delivered(s) for s in chosen]

    def receive_deferred(
        self, address: str, sequence_numbers: Iterable[int], *, peek_lock: bool
    ) -> list[Delivered]:
        with self._lock:
            store = self._store(address)
            now = self.clock.now()
            numbers = list(sequence_numbers)
            chosen: list[_Stored] = []
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
                    self._unlock(stored)
                if peek_lock:
                    self._lock_message(store, stored, now)
                else:
                    store.remove(stored.sequence_number)
                out.append(self._delivered(stored))
            return out

    # -- settlement ----------------------------------------------------------------

    _LOCK_LOST = (
        "The lock supplied is invalid. Either the lock expired, or the message has "
        "already been removed from the queue."
    )

    def _locked(self, token: uuid.UUID) -> tuple[_Store, _Stored]:
        entry = self._locks.get(token)
        if entry is None:
            raise MessageLockLostError(self._LOCK_LOST)
        store, number = entry
        stored = store.messages.get(number)
        if stored is None or stored.lock_token != token:
            del self._locks[token]
            raise MessageLockLostError(self._LOCK_LOST)
        if stored.locked_until is not None and stored.locked_until <= self.clock.now():
            self._unlock(stored)
            self._failed_delivery(store, stored)
            raise MessageLockLostError(self._LOCK_LOST)
        return store, stored

    def _unlock(self, stored: _Stored) -> None:
        if stored.lock_token is not None:
            self._locks.pop(stored.lock_token, None)
        stored.lock_token = None
        stored.locked_until = None

    def is_locked(self, token: uuid.UUID) -> bool:
        """Whether ``token`` is a live lock (not expired, not settled)."""
        with self._lock:
            try:
                self._locked(token)
            except MessageLockLostError:
                return False
            return True

    def complete(self, token: uuid.UUID) -> None:
        with self._lock:
            store, stored = self._locked(token)
            self._unlock(stored)
            store.remove(stored.sequence_number)

    def abandon(self, token: uuid.UUID) -> None:
        with self._lock:
            store, stored = self._locked(token)
            self._unlock(stored)
            self._failed_delivery(store, stored)

    def release(self, token: uuid.UUID) -> None:
        """Unlock without counting a delivery (AMQP ``released``). A lost lock is a no-op:
        there is nothing left to give back."""
        with self._lock:
            try:
                store, stored = self._locked(token)
            except MessageLockLostError:
                return
            self._unlock(stored)
            store.make_available(stored)

    def defer(self, token: uuid.UUID) -> None:
        with self._lock:
            _, stored = self._locked(token)
            self._unlock(stored)
            stored.state = MessageState.DEFERRED

    def dead_letter(
        self, token: uuid.UUID, reason: str | None = None, description: str | None = None
    ) -> None:
        with self._lock:
            store, stored = self._locked(token)
            if store.dead_letter is None:
                raise NotAllowedError("A message in a dead-letter queue cannot be dead-lettered.")
            self._unlock(stored)
            self._move_to_dead_letter(store, stored, reason, description)

    def renew_lock(self, token: uuid.UUID) -> float:
        """Extend a lock by the entity's lock duration; returns the new expiry."""
        with self._lock:
            store, stored = self._locked(token)
            stored.locked_until = self.clock.now() + store.lock_duration
            heapq.heappush(self._lock_expiries, (stored.locked_until, token))
            return stored.locked_until

    def _failed_delivery(self, store: _Store, stored: _Stored) -> None:
        stored.delivery_count += 1
        if store.dead_letter is not None and stored.delivery_count >= store.max_delivery_count:
            self._move_to_dead_letter(
                store,
                stored,
                MAX_DELIVERY_COUNT_EXCEEDED,
                f"Message could not be consumed after {store.max_delivery_count} "
                "delivery attempts.",
            )
        else:
            store.make_available(stored)

    def _move_to_dead_letter(
        self, store: _Store, stored: _Stored, reason: str | None, description: str | None
    ) -> None:
        assert store.dead_letter is not None
        store.remove(stored.sequence_number)
        store.dead_letter.add(
            replace(
                stored,
                state=MessageState.ACTIVE,
                lock_token=None,
                locked_until=None,
                expires_at=None,  # the dead-letter queue keeps messages until taken
                dead_letter_reason=reason,
                dead_letter_error_description=description,
            )
        )

    def _expire(self, store: _Store, stored: _Stored) -> None:
        if store.dead_letter_on_expiration and store.dead_letter is not None:
            self._move_to_dead_letter(
                store, stored, TTL_EXPIRED, "The message expired and was dead lettered."
            )
        else:
            store.remove(stored.sequence_number)

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
            for ingress in [*self._queues.values(), *self._topics.values()]:
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
            while self._lock_expiries and self._lock_expiries[0][0] <= now:
                _, token = heapq.heappop(self._lock_expiries)
                entry = self._locks.get(token)
                if entry is None:
                    continue  # settled, or already expired
                store, number = entry
                locked = store.messages.get(number)
                if locked is None or locked.lock_token != token:
                    del self._locks[token]
                elif locked.locked_until is not None and locked.locked_until <= now:
                    self._unlock(locked)
                    self._failed_delivery(store, locked)
                    changed = True
                # else: renewed since; its newer heap entry will come up later
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
                    self._expire(store, expiring)
            if now - self._last_purge > 1.0:
                self._last_purge = now
                for ingress in [*self._queues.values(), *self._topics.values()]:
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
            ingress = self._ingress(address)
            ingress.refuse_remaining = max(count or 0, 0)
            ingress.refuse_until = self._monotonic() + for_seconds if for_seconds else 0.0

    # -- inspection -----------------------------------------------------------------

    def _inspect_store(self, address: str) -> _Store:
        resolved = self._resolve(address)
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
            resolved = self._resolve(address)
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
            resolved = self._resolve(address)
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
            resolved = self._resolve(address)
            if resolved.ingress is not None:
                return resolved.ingress.sent
            assert resolved.store is not None
            return resolved.store.enqueued_total

    def duplicates_dropped(self, address: str) -> int:
        with self._lock:
            resolved = self._resolve(address)
            return resolved.ingress.dropped if resolved.ingress is not None else 0

    def refused_count(self, address: str) -> int:
        with self._lock:
            return self._ingress(address).refused
