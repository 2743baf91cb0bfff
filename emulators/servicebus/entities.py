"""The entities of a namespace: queues, topics, subscriptions and how addresses resolve.

This module owns where messages live and the rules that belong to one entity: a
``Store`` (a queue's, a subscription's or a dead-letter queue's messages in delivery
order, with the entity's lock duration, delivery limit and TTL, and what a failed
delivery or an expiry does to a message), an ``Ingress`` (where senders send: sequence
numbers, duplicate detection, the schedule, injected refusals), the subscription filter,
and ``Namespace``, which resolves an AMQP address (case-insensitively, with
``$DeadLetterQueue`` and ``$management`` suffixes) to them. The broker holds the lock.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Mapping
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
from .errors import EntityNotFoundError, NotAllowedError
from .model import MessageState, Stored

__all__ = [
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "Address",
    "Ingress",
    "Namespace",
    "Queue",
    "Store",
    "Subscription",
    "Topic",
    "entity_path",
]

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
TTL_EXPIRED = "TTLExpiredException"
DEAD_LETTER_QUEUE = "$deadletterqueue"
MANAGEMENT = "$management"


class Store:
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
        self.messages: dict[int, Stored] = {}
        #: sequence numbers of active, unlocked messages, ascending (delivery order).
        self.available: list[int] = []
        self.enqueued_total = 0
        self.dead_letter: Store | None = None
        if not is_dead_letter:
            self.dead_letter = Store(
                f"{path}/$DeadLetterQueue",
                lock_duration=lock_duration,
                max_delivery_count=max_delivery_count,
                time_to_live=None,
                dead_letter_on_expiration=False,
                is_dead_letter=True,
            )

    def add(self, stored: Stored) -> None:
        self.messages[stored.sequence_number] = stored
        if stored.state is MessageState.ACTIVE and stored.lock_token is None:
            bisect.insort(self.available, stored.sequence_number)
        self.enqueued_total += 1

    def make_available(self, stored: Stored) -> None:
        if stored.state is MessageState.ACTIVE:
            bisect.insort(self.available, stored.sequence_number)

    def remove(self, sequence_number: int) -> None:
        self.messages.pop(sequence_number, None)
        index = bisect.bisect_left(self.available, sequence_number)
        if index < len(self.available) and self.available[index] == sequence_number:
            del self.available[index]

    def failed_delivery(self, stored: Stored) -> None:
        """Count a failed delivery; dead-letter the message at the delivery limit."""
        stored.delivery_count += 1
        if self.dead_letter is not None and stored.delivery_count >= self.max_delivery_count:
            self.move_to_dead_letter(
                stored,
                MAX_DELIVERY_COUNT_EXCEEDED,
                f"Message could not be consumed after {self.max_delivery_count} delivery attempts.",
            )
        else:
            self.make_available(stored)

    def move_to_dead_letter(
        self, stored: Stored, reason: str | None, description: str | None
    ) -> None:
        assert self.dead_letter is not None
        self.remove(stored.sequence_number)
        self.dead_letter.add(
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

    def expire(self, stored: Stored) -> None:
        """A message outlived its TTL: dead-letter it if the entity says so, else drop it."""
        if self.dead_letter_on_expiration and self.dead_letter is not None:
            self.move_to_dead_letter(
                stored, TTL_EXPIRED, "The message expired and was dead lettered."
            )
        else:
            self.remove(stored.sequence_number)


class Ingress:
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
        self.scheduled: dict[int, Stored] = {}
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


class Queue(Ingress):
    def __init__(self, name: str, config: QueueConfig) -> None:
        super().__init__(
            name,
            duplicate_detection_window=config.duplicate_detection_window,
            time_to_live=config.default_message_time_to_live,
            max_message_size=config.max_message_size,
        )
        self.config = config
        self.store = Store(
            name,
            lock_duration=config.lock_duration,
            max_delivery_count=config.max_delivery_count,
            time_to_live=config.default_message_time_to_live,
            dead_letter_on_expiration=config.dead_lettering_on_message_expiration,
        )


class Subscription:
    def __init__(self, topic: str, name: str, config: SubscriptionConfig) -> None:
        self.name = name
        self.filter = dict(config.filter) if config.filter is not None else None
        self.store = Store(
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


class Topic(Ingress):
    def __init__(self, name: str, config: TopicConfig) -> None:
        super().__init__(
            name,
            duplicate_detection_window=config.duplicate_detection_window,
            time_to_live=config.default_message_time_to_live,
            max_message_size=config.max_message_size,
        )
        self.config = config
        self.subscriptions = {
            sub_name.lower(): Subscription(name, sub_name, sub_config)
            for sub_name, sub_config in config.subscriptions.items()
        }


@dataclass(frozen=True)
class Address:
    path: str
    ingress: Ingress | None  # set for a queue or a topic
    store: Store | None  # set for a queue, subscription or dead-letter queue
    management: bool


def entity_path(address: str) -> str:
    """The entity path of an AMQP address: ``amqps://host:port/a/b`` -> ``a/b``."""
    if "://" in address:
        address = address.split("://", 1)[1].partition("/")[2]
    return address.strip("/")


class Namespace:
    """A namespace's queues and topics by lower-cased name (subscriptions hang off topics)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.queues = {name.lower(): Queue(name, cfg) for name, cfg in config.queues.items()}
        self.topics = {name.lower(): Topic(name, cfg) for name, cfg in config.topics.items()}

    def resolve(self, address: str) -> Address:
        path = entity_path(address)
        parts = [p for p in path.split("/") if p]
        lowered = [p.lower() for p in parts]
        management = bool(lowered) and lowered[-1] == MANAGEMENT
        if management:
            lowered = lowered[:-1]
        dead_letter = bool(lowered) and lowered[-1] == DEAD_LETTER_QUEUE
        if dead_letter:
            lowered = lowered[:-1]
        ingress: Ingress | None = None
        store: Store | None = None
        if len(lowered) == 1 and lowered[0] in self.queues:
            queue = self.queues[lowered[0]]
            ingress, store = queue, queue.store
        elif len(lowered) == 1 and lowered[0] in self.topics and not dead_letter:
            ingress = self.topics[lowered[0]]
        elif len(lowered) == 3 and lowered[1] == "subscriptions" and lowered[0] in self.topics:
            sub = self.topics[lowered[0]].subscriptions.get(lowered[2])
            if sub is not None:
                store = sub.store
        if ingress is None and store is None:
            raise EntityNotFoundError(f"The messaging entity '{path}' could not be found.")
        if dead_letter:
            assert store is not None
            assert store.dead_letter is not None
            ingress, store = None, store.dead_letter
        return Address(path=path, ingress=ingress, store=store, management=management)

    def ingress(self, address: str) -> Ingress:
        resolved = self.resolve(address)
        if resolved.ingress is None:
            raise NotAllowedError(
                f"Cannot send to '{resolved.path}': only queues and topics accept messages."
            )
        return resolved.ingress

    def store(self, address: str) -> Store:
        resolved = self.resolve(address)
        if resolved.store is None:
            raise NotAllowedError(
                f"Cannot receive from topic '{resolved.path}': receive from a subscription."
            )
        return resolved.store

    def ingresses(self) -> list[Ingress]:
        """Every queue and topic: what schedules, dedupe windows and refusals apply to."""
        return [*self.queues.values(), *self.topics.values()]

    def paths(self) -> list[str]:
        """Every addressable entity, for banners and help text."""
        paths = [q.path for q in self.queues.values()]
        for topic in self.topics.values():
            paths.append(topic.path)
            paths.extend(s.store.path for s in topic.subscriptions.values())
        return paths
