"""Entity configuration for the Service Bus emulator: queues, topics, subscriptions.

This module owns the *shape* of what a namespace contains and its loading from JSON
or CLI flags; it knows nothing about AMQP. Durations are seconds (floats), sizes bytes.
Defaults are Service Bus Standard-tier defaults, except duplicate detection, which is
off unless a window is given (as on Service Bus, where it is opt-in per entity).

JSON file shape (every key optional, unknown keys are an error so typos surface)::

    {
      "authorization_rules": [
        {"key_name": "ops-listen", "key": "<secret>", "rights": ["Listen"]}
      ],
      "queues": {
        "watches": {"max_delivery_count": 10, "lock_duration": 60,
                    "duplicate_detection_window": 600},
        "intake": {"authorization_rules": [
          {"key_name": "pipelines", "key": "<secret>", "rights": ["Send"]}
        ]}
      },
      "topics": {
        "events": {
          "duplicate_detection_window": 600,
          "authorization_rules": [
            {"key_name": "subscribers", "key": "<secret>", "rights": ["Listen"]}
          ],
          "subscriptions": {
            "all": {},
            "succeeded": {"filter": {"status": "Succeeded"}},
            "failed": {"sql_filter": "status IN ('Failed', 'Canceled', 'TimedOut')"},
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

A ``sql_filter`` is a Service Bus SQL filter expression, of which the emulator knows
exactly the subset the deployment template uses: one predicate, ``prop = 'text'`` or
``prop IN ('a', 'b', ...)``, where ``prop`` is ``name``, ``user.name`` (application
property) or ``sys.Name`` (a system property above), and values are single-quoted strings
(``''`` for a quote). Anything else (AND/OR/NOT, LIKE, numbers, EXISTS, ...) is a
``ConfigError`` naming the expression, never a filter that silently matches differently.
It compiles to the same key/value mapping as ``filter``, an ``IN`` list becoming an
``AnyOf`` value (equal to each of its members); a subscription has one or the other.

``authorization_rules`` are Shared Access Signature rules, as on Service Bus: at the root
they are namespace-level rules (valid for every entity), on a queue or topic they are
valid for that entity only (a topic's rules cover its subscriptions). Each has a
``key_name`` (1-50 characters: letters, digits, ``.``, ``-``, ``_``, starting and ending
with a letter or digit), a ``key`` and ``rights``, a non-empty subset of ``Listen``,
``Send``, ``Manage`` (``Manage`` implies the other two). At most 12 rules per level. The
namespace always also has the root rule ``RootManageSharedAccessKey`` (Manage), which
the emulator adds itself, so the root list must not name it.

One module, over 400 lines mostly of this docstring: the JSON shape above is one
format, and its dataclasses, checks and loader are read together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from .errors import ConfigError
from .filters import SYSTEM_FILTER_KEYS, AnyOf, check_filter, parse_sql_filter

__all__ = [
    "DEFAULT_LOCK_DURATION",
    "DEFAULT_MAX_DELIVERY_COUNT",
    "LISTEN",
    "MANAGE",
    "MAX_RULES_PER_LEVEL",
    "RIGHTS",
    "SEND",
    "STANDARD_MAX_MESSAGE_SIZE",
    "SYSTEM_FILTER_KEYS",
    "AnyOf",
    "AuthorizationRule",
    "ConfigError",
    "EmulatorConfig",
    "EntityConfig",
    "QueueConfig",
    "SubscriptionConfig",
    "TopicConfig",
    "effective_rights",
    "load_config",
    "parse_rights",
    "parse_sql_filter",
    "parse_subscription_flag",
]

#: Standard tier: 256 KB per message (headers included), also the batch limit.
STANDARD_MAX_MESSAGE_SIZE = 256 * 1024
DEFAULT_LOCK_DURATION = 60.0
DEFAULT_MAX_DELIVERY_COUNT = 10
#: Service Bus bounds: lock duration at most 5 minutes; dedupe window 20 s to 7 days.
_MAX_LOCK_DURATION = 300.0

#: Service Bus access rights (claims) a rule can grant.
LISTEN = "Listen"
SEND = "Send"
MANAGE = "Manage"
RIGHTS = (LISTEN, SEND, MANAGE)
#: "A single tree level in Service Bus (namespace, queue, ...) can only have up to 12
#: policies attached to it" (service-bus-sas.md).
MAX_RULES_PER_LEVEL = 12
#: ARM's rule for authorization rule names (Microsoft.ServiceBus/namespaces/AuthorizationRules).
_RULE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?", re.ASCII)


def parse_rights(rights: Iterable[str], what: str = "rights") -> frozenset[str]:
    """Normalise rights (``"send"`` -> ``"Send"``); an unknown or empty set is an error."""
    if isinstance(rights, str) or not isinstance(rights, Iterable):
        raise ConfigError(f"{what} must be a list of {list(RIGHTS)}, not {rights!r}")
    by_lower = {r.lower(): r for r in RIGHTS}
    parsed: set[str] = set()
    for right in rights:
        if not isinstance(right, str) or right.lower() not in by_lower:
            raise ConfigError(f"unknown right {right!r} in {what} (known: {list(RIGHTS)})")
        parsed.add(by_lower[right.lower()])
    if not parsed:
        raise ConfigError(f"{what} must not be empty (known: {list(RIGHTS)})")
    return frozenset(parsed)


def effective_rights(rights: Iterable[str]) -> frozenset[str]:
    """What ``rights`` allow: ``Manage`` implies ``Listen`` and ``Send``."""
    granted = frozenset(rights)
    return frozenset(RIGHTS) if MANAGE in granted else granted


@dataclass(frozen=True)
class AuthorizationRule:
    """A Shared Access Signature authorization rule: key name, key, rights.

    ``rights`` accepts any iterable of ``"Listen"``, ``"Send"``, ``"Manage"`` (any case)
    and is stored as a frozenset. The key never appears in ``repr``.
    """

    key_name: str
    key: str = field(repr=False)
    rights: frozenset[str] = frozenset(RIGHTS)

    def __post_init__(self) -> None:
        if not isinstance(self.key_name, str) or not _RULE_NAME.fullmatch(self.key_name):
            raise ConfigError(
                f"invalid authorization rule key_name {self.key_name!r}: 1-50 letters, "
                "digits, '.', '-' or '_', starting and ending with a letter or digit"
            )
        if not isinstance(self.key, str) or not self.key:
            raise ConfigError(f"authorization rule {self.key_name!r} needs a non-empty key")
        object.__setattr__(
            self, "rights", parse_rights(self.rights, f"rule {self.key_name!r} rights")
        )

    @property
    def effective_rights(self) -> frozenset[str]:
        return effective_rights(self.rights)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_name": self.key_name,
            "key": self.key,
            "rights": [r for r in RIGHTS if r in self.rights],
        }


def _check_rules(rules: Any, what: str) -> tuple[AuthorizationRule, ...]:
    """Validate a sequence of rules (unique names, at most 12) and return it as a tuple."""
    if isinstance(rules, str | bytes | Mapping) or not isinstance(rules, Iterable):
        raise ConfigError(f"authorization_rules of {what} must be a list, not {rules!r}")
    rules = tuple(rules)
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule, AuthorizationRule):
            raise ConfigError(f"authorization_rules of {what} must hold AuthorizationRule objects")
        if rule.key_name.lower() in seen:
            raise ConfigError(f"authorization rule {rule.key_name!r} is defined twice on {what}")
        seen.add(rule.key_name.lower())
    if len(seen) > MAX_RULES_PER_LEVEL:
        raise ConfigError(
            f"{what} has {len(seen)} authorization rules; Service Bus allows "
            f"{MAX_RULES_PER_LEVEL} per level"
        )
    return rules


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
    """A topic subscription: a filter plus the same receive settings a queue has.

    ``filter`` is a correlation-style mapping; ``sql_filter`` a SQL filter expression of
    the supported subset (``parse_sql_filter``), compiled into ``filter``.
    """

    filter: Mapping[str, Any] | None = None
    lock_duration: float = DEFAULT_LOCK_DURATION
    max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    default_message_time_to_live: float | None = None
    dead_lettering_on_message_expiration: bool = False
    sql_filter: str | None = None

    def __post_init__(self) -> None:
        if self.sql_filter is not None:
            compiled = parse_sql_filter(self.sql_filter)
            # dataclasses.replace passes the compiled filter back in: that is not "both".
            if self.filter is not None and dict(self.filter) != compiled:
                raise ConfigError("a subscription takes filter or sql_filter, not both")
            object.__setattr__(self, "filter", compiled)
        check_filter(self.filter)
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
    #: Entity-level SAS rules: valid for this queue only.
    authorization_rules: Sequence[AuthorizationRule] = ()

    def __post_init__(self) -> None:
        _check_common(
            self.lock_duration, self.max_delivery_count, self.default_message_time_to_live
        )
        _check_window(self.duplicate_detection_window)
        if self.max_message_size < 1024:
            raise ConfigError("max_message_size must be at least 1024 bytes")
        object.__setattr__(
            self, "authorization_rules", _check_rules(self.authorization_rules, "the queue")
        )


@dataclass(frozen=True)
class TopicConfig:
    """A topic and its subscriptions. Duplicate detection is a topic-level setting."""

    subscriptions: Mapping[str, SubscriptionConfig] = field(default_factory=dict)
    duplicate_detection_window: float | None = None
    default_message_time_to_live: float | None = None
    max_message_size: int = STANDARD_MAX_MESSAGE_SIZE
    #: Entity-level SAS rules: valid for this topic and its subscriptions only.
    authorization_rules: Sequence[AuthorizationRule] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "authorization_rules", _check_rules(self.authorization_rules, "the topic")
        )
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
    """Everything a namespace holds. Entity names are matched case-insensitively.

    ``authorization_rules`` are the namespace-level SAS rules *besides* the root rule,
    which ``ServiceBusEmulator`` always adds.
    """

    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    topics: Mapping[str, TopicConfig] = field(default_factory=dict)
    authorization_rules: Sequence[AuthorizationRule] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for kind, names in (("queue", self.queues), ("topic", self.topics)):
            for name in names:
                _check_name(name, kind)
                if name.lower() in seen:
                    raise ConfigError(f"entity name used twice: {name!r}")
                seen.add(name.lower())
        object.__setattr__(
            self,
            "authorization_rules",
            _check_rules(self.authorization_rules, "the namespace"),
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EmulatorConfig:
        """Build from the JSON shape described in the module docstring."""
        _only_keys(raw, {"queues", "topics", "authorization_rules"}, "the config root")
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
        rules = _rules_from_json(raw.get("authorization_rules", []), "the config root")
        return cls(queues=queues, topics=topics, authorization_rules=rules)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape again (round-trips through ``from_dict``)."""

        def value(v: Any) -> Any:
            if isinstance(v, Mapping):
                return dict(v)
            if isinstance(v, tuple):
                return [r.to_dict() if isinstance(r, AuthorizationRule) else r for r in v]
            return v

        def plain(obj: Any) -> dict[str, Any]:
            compiled = {"filter"} if getattr(obj, "sql_filter", None) is not None else set()
            return {
                f.name: value(v)
                for f in fields(obj)
                if (v := getattr(obj, f.name)) is not None
                and f.name not in {"subscriptions", *compiled}
                and v != ()
            }

        result: dict[str, Any] = {
            "queues": {name: plain(q) for name, q in self.queues.items()},
            "topics": {
                name: {
                    **plain(t),
                    "subscriptions": {s: plain(sub) for s, sub in t.subscriptions.items()},
                }
                for name, t in self.topics.items()
            },
        }
        if self.authorization_rules:
            result["authorization_rules"] = [r.to_dict() for r in self.authorization_rules]
        return result

    def merged(self, other: EmulatorConfig) -> EmulatorConfig:
        """This config with ``other``'s entities and namespace rules added (other wins on
        a name clash; topics with the same name get their subscriptions and authorization
        rules merged)."""
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
                    authorization_rules=_merge_rules(
                        base.authorization_rules, topic.authorization_rules
                    ),
                )
            else:
                topics[name] = topic
        return EmulatorConfig(
            queues=queues,
            topics=topics,
            authorization_rules=_merge_rules(self.authorization_rules, other.authorization_rules),
        )


def _merge_rules(
    base: Sequence[AuthorizationRule], other: Sequence[AuthorizationRule]
) -> tuple[AuthorizationRule, ...]:
    names = {r.key_name.lower() for r in other}
    return tuple(r for r in base if r.key_name.lower() not in names) + tuple(other)


def _rules_from_json(raw: Any, what: str) -> tuple[AuthorizationRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"authorization_rules of {what} must be a JSON list")
    rules = []
    for item in raw:
        options = dict(_mapping(item, f"an authorization rule of {what}"))
        _only_keys(options, {"key_name", "key", "rights"}, f"an authorization rule of {what}")
        missing = {"key_name", "key", "rights"} - set(options)
        if missing:
            raise ConfigError(f"an authorization rule of {what} lacks {sorted(missing)}")
        rules.append(AuthorizationRule(options["key_name"], options["key"], options["rights"]))
    return tuple(rules)


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
    if "authorization_rules" in options:
        options["authorization_rules"] = _rules_from_json(options["authorization_rules"], what)
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
