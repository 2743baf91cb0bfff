"""Entity configuration for the Service Bus emulator: queues, topics, subscriptions.

This module owns the *shape* of what a namespace contains and its loading from JSON
or CLI flags; it knows nothing about AMQP. Durations are seconds (floats), sizes bytes.
Defaults are Service Bus Standard-tier defaults, except duplicate detection, which is
off unless a window is given (as on Service Bus, where it is opt-in per entity).

JSON file shape (every key optional, unknown keys are an error so typos surface)::

    {
      "queues": {
        "watches": {"max_delivery_count": 10, "lock_duration": 60,
                    "duplicate_detection_window": 600}
      },
      "topics": {
        "events": {
          "duplicate_detection_window": 600,
          "subscriptions": {
            "all": {},
            "failed": {"filter": {"status": "Failed"}},
            "by-subject": {"filter": {"sys.subject": "OperationFailed"}}
          }
        }
      }
    }

A subscription ``filter`` is a correlation-style filter: every key must equal the
message's value. Plain keys are application properties; ``sys.<name>`` keys are system
properties: ``sys.message_id``, ``sys.correlation_id``, ``sys.subject`` (alias
``sys.label``), ``sys.content_type``, ``sys.to``, ``sys.reply_to``, ``sys.session_id``,
``sys.reply_to_session_id``. ``null``/absent means "match everything" (Service Bus's
default ``TrueFilter``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

__all__ = [
    "DEFAULT_LOCK_DURATION",
    "DEFAULT_MAX_DELIVERY_COUNT",
    "STANDARD_MAX_MESSAGE_SIZE",
    "SYSTEM_FILTER_KEYS",
    "ConfigError",
    "EmulatorConfig",
    "EntityConfig",
    "QueueConfig",
    "SubscriptionConfig",
    "TopicConfig",
    "load_config",
    "parse_subscription_flag",
]

#: Standard tier: 256 KB per message (headers included), also the batch limit.
STANDARD_MAX_MESSAGE_SIZE = 256 * 1024
DEFAULT_LOCK_DURATION = 60.0
DEFAULT_MAX_DELIVERY_COUNT = 10
#: Service Bus bounds: lock duration at most 5 minutes; dedupe window 20 s to 7 days.
_MAX_LOCK_DURATION = 300.0

#: ``sys.<key>`` filter keys and the AMQP properties field each one reads.
SYSTEM_FILTER_KEYS: Mapping[str, str] = {
    "message_id": "message_id",
    "messageid": "message_id",
    "correlation_id": "correlation_id",
    "correlationid": "correlation_id",
    "subject": "subject",
    "label": "subject",
    "content_type": "content_type",
    "contenttype": "content_type",
    "to": "to",
    "reply_to": "reply_to",
    "replyto": "reply_to",
    "session_id": "group_id",
    "sessionid": "group_id",
    "reply_to_session_id": "reply_to_group_id",
    "replytosessionid": "reply_to_group_id",
}


class ConfigError(ValueError):
    """The entity configuration is malformed (bad key, bad value, bad name)."""


def _check_filter(filter_: Mapping[str, Any] | None) -> None:
    if filter_ is None:
        return
    if not isinstance(filter_, Mapping):
        raise ConfigError(f"a subscription filter must be a mapping, not {filter_!r}")
    for key in filter_:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"filter keys must be non-empty strings, not {key!r}")
        if key.lower().startswith("sys.") and key[4:].lower() not in SYSTEM_FILTER_KEYS:
            known = ", ".join(sorted({f"sys.{k}" for k in SYSTEM_FILTER_KEYS if "_" in k}))
            raise ConfigError(f"unknown system property in filter: {key!r} (known: {known})")


def _check_common(
    lock_duration: float,
    max_delivery_count: int,
    default_message_time_to_live: float | None,
) -> None:
    if not 0 < lock_duration <= _MAX_LOCK_DURATION:
        raise ConfigError(f"lock_duration must be in (0, 300] seconds, not {lock_duration!r}")
    if max_delivery_count < 1:
        raise ConfigError(f"max_delivery_count must be at least 1, not {max_delivery_count!r}")
    if default_message_time_to_live is not None and default_message_time_to_live <= 0:
        raise ConfigError("default_message_time_to_live must be positive")


def _check_window(window: float | None) -> None:
    # Service Bus only accepts 20 s .. 7 days; the emulator accepts any positive window so
    # tests can use short ones, but zero/negative is surely a mistake.
    if window is not None and window <= 0:
        raise ConfigError(f"duplicate_detection_window must be positive, not {window!r}")


@dataclass(frozen=True)
class SubscriptionConfig:
    """A topic subscription: a filter plus the same receive settings a queue has."""

    filter: Mapping[str, Any] | None = None
    lock_duration: float = DEFAULT_LOCK_DURATION
    max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    default_message_time_to_live: float | None = None
    dead_lettering_on_message_expiration: bool = False

    def __post_init__(self) -> None:
        _check_filter(self.filter)
        _check_common(
            self.lock_duration, self.max_delivery_count, self.default_message_time_to_live
        )


@dataclass(frozen=True)
class QueueConfig:
    """A queue. ``duplicate_detection_window=None`` means duplicate detection is off."""

    lock_duration: float = DEFAULT_LOCK_DURATION
    max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    duplicate_detection_window: float | None = None
    default_message_time_to_live: float | None = None
    dead_lettering_on_message_expiration: bool = False
    max_message_size: int = STANDARD_MAX_MESSAGE_SIZE

    def __post_init__(self) -> None:
        _check_common(
            self.lock_duration, self.max_delivery_count, self.default_message_time_to_live
        )
        _check_window(self.duplicate_detection_window)
        if self.max_message_size < 1024:
            raise ConfigError("max_message_size must be at least 1024 bytes")


@dataclass(frozen=True)
class TopicConfig:
    """A topic and its subscriptions. Duplicate detection is a topic-level setting."""

    subscriptions: Mapping[str, SubscriptionConfig] = field(default_factory=dict)
    duplicate_detection_window: float | None = None
    default_message_time_to_live: float | None = None
    max_message_size: int = STANDARD_MAX_MESSAGE_SIZE

    def __post_init__(self) -> None:
        _check_window(self.duplicate_detection_window)
        if self.default_message_time_to_live is not None and self.default_message_time_to_live <= 0:
            raise ConfigError("default_message_time_to_live must be positive")
        if self.max_message_size < 1024:
            raise ConfigError("max_message_size must be at least 1024 bytes")
        for name, sub in self.subscriptions.items():
            _check_name(name, "subscription")
            if not isinstance(sub, SubscriptionConfig):
                raise ConfigError(f"subscription {name!r} must be a SubscriptionConfig")


#: Any one entity's configuration.
EntityConfig = Union[QueueConfig, TopicConfig, SubscriptionConfig]  # noqa: UP007 (a runtime alias)


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("$"):
        raise ConfigError(f"invalid {kind} name: {name!r}")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything a namespace holds. Entity names are matched case-insensitively."""

    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    topics: Mapping[str, TopicConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for kind, names in (("queue", self.queues), ("topic", self.topics)):
            for name in names:
                _check_name(name, kind)
                if name.lower() in seen:
                    raise ConfigError(f"entity name used twice: {name!r}")
                seen.add(name.lower())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EmulatorConfig:
        """Build from the JSON shape described in the module docstring."""
        _only_keys(raw, {"queues", "topics"}, "the config root")
        queues = {
            name: _build(QueueConfig, options, f"queue {name!r}")
            for name, options in _mapping(raw.get("queues", {}), "queues").items()
        }
        topics: dict[str, TopicConfig] = {}
        for name, topic_options in _mapping(raw.get("topics", {}), "topics").items():
            options = dict(_mapping(topic_options, f"topic {name!r}"))
            subs = {
                sub_name: _build(SubscriptionConfig, sub_options, f"subscription {name}/{sub_name}")
                for sub_name, sub_options in _mapping(
                    options.pop("subscriptions", {}), f"topic {name!r} subscriptions"
                ).items()
            }
            topics[name] = _build(TopicConfig, options, f"topic {name!r}", subscriptions=subs)
        return cls(queues=queues, topics=topics)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape again (round-trips through ``from_dict``)."""

        def plain(obj: Any) -> dict[str, Any]:
            return {
                f.name: (dict(v) if isinstance(v, Mapping) else v)
                for f in fields(obj)
                if (v := getattr(obj, f.name)) is not None and f.name != "subscriptions"
            }

        return {
            "queues": {name: plain(q) for name, q in self.queues.items()},
            "topics": {
                name: {
                    **plain(t),
                    "subscriptions": {s: plain(sub) for s, sub in t.subscriptions.items()},
                }
                for name, t in self.topics.items()
            },
        }

    def merged(self, other: EmulatorConfig) -> EmulatorConfig:
        """This config with ``other``'s entities added (other wins on a name clash;
        topics with the same name get their subscriptions merged)."""
        queues = dict(self.queues)
        queues.update(other.queues)
        topics = dict(self.topics)
        for name, topic in other.topics.items():
            if name in topics:
                subs = dict(topics[name].subscriptions)
                subs.update(topic.subscriptions)
                base = topics[name]
                topics[name] = TopicConfig(
                    subscriptions=subs,
                    duplicate_detection_window=base.duplicate_detection_window,
                    default_message_time_to_live=base.default_message_time_to_live,
                    max_message_size=base.max_message_size,
                )
            else:
                topics[name] = topic
        return EmulatorConfig(queues=queues, topics=topics)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _only_keys(raw: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {what}: {sorted(unknown)} (allowed: {sorted(allowed)})"
        )


def _build(cls: type[Any], options: Any, what: str, **extra: Any) -> Any:
    options = dict(_mapping(options, what))
    allowed = {f.name for f in fields(cls)} - set(extra)
    _only_keys(options, allowed, what)
    try:
        return cls(**options, **extra)
    except TypeError as exc:  # a wrongly typed value reaching a comparison
        raise ConfigError(f"{what}: {exc}") from exc


def load_config(path: str | Path) -> EmulatorConfig:
    """Read an ``EmulatorConfig`` from a JSON file."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    return EmulatorConfig.from_dict(_mapping(raw, str(path)))


def parse_subscription_flag(flag: str) -> tuple[str, str, SubscriptionConfig]:
    """Parse the CLI form ``TOPIC/NAME[:prop=value,...]`` into (topic, name, config).

    Values are strings; ``true``/``false`` become booleans and integers become ints so a
    filter can match typed application properties.
    """
    spec, _, filter_text = flag.partition(":")
    topic, slash, name = spec.partition("/")
    if not slash or not topic or not name:
        raise ConfigError(f"--subscription wants TOPIC/NAME[:prop=value,...], not {flag!r}")
    filter_: dict[str, Any] | None = None
    if filter_text:
        filter_ = {}
        for pair in filter_text.split(","):
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise ConfigError(f"bad filter term {pair!r} in {flag!r} (want prop=value)")
            filter_[key.strip()] = _typed(value.strip())
    return topic, name, SubscriptionConfig(filter=filter_)


def _typed(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text
