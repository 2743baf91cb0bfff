"""The Service Bus entities of the deployment template, for the local emulator.

``infra/azuredeploy.json`` is the one source of truth for what the namespace holds: queue
and topic names (the defaults of ``intakeQueueName``, ``pollsQueueName``,
``eventsTopicName``), every queue's lock duration, MaxDeliveryCount, duplicate-detection
window, message TTL and dead-lettering on expiry, the topic's window and TTL, and the
example subscriptions with their ``$Default`` rules (``succeeded``: a CorrelationFilter on
``status``; ``failed``: the SqlFilter ``status IN ('Failed', 'Canceled', 'TimedOut',
'Rejected')``). ``load_topology()`` reads them from the template with its parameter
defaults; ``local_config()`` adds what only the local stack has and uses everything else
as derived. ``LocalStack``, ``python -m emulators up`` and ``emulators/servicebus/
entities.json`` (``python -m emulators topology --write`` regenerates it) all come from here,
and ``tests/infra/test_topology.py`` checks the result against an independent reading of
the template.

Local-only additions (``local_config``): a subscription ``all`` with no filter (to see
every event), and a SAS rule ``pipeline-send`` with Send on the intake queue (the stand-in
for "pipelines hold Data Sender on the intake queue only", which Azure grants by RBAC).

Only the template shapes the template uses are understood: names built with
``format('{0}/{1}...', variables('serviceBusNamespaceName'), parameters(...), '...')``,
literal properties, a ``condition`` that is a boolean parameter. Anything else, an unknown
entity property, or a rule other than ``$Default`` raises ``TopologyError`` naming it, so
a template change that the emulator would not reproduce fails loudly instead of drifting.

One module, a little over 400 lines: the reader of one document (the template),
mostly checks that refuse what the emulator could not reproduce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from emulators.servicebus.config import (
    AuthorizationRule,
    EmulatorConfig,
    QueueConfig,
    SubscriptionConfig,
    TopicConfig,
)

__all__ = [
    "LOCAL_SUBSCRIPTIONS",
    "PIPELINE_KEY",
    "PIPELINE_RULE",
    "TEMPLATE",
    "Topology",
    "TopologyError",
    "load_topology",
    "local_config",
]

TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "azuredeploy.json"

#: The pipeline's SAS rule on the intake queue (local stand-in for RBAC Data Sender).
PIPELINE_RULE = "pipeline-send"
# A local emulator key, not a secret: it opens nothing but a local emulator.
PIPELINE_KEY = "cGlwZWxpbmUtc2VuZC1sb2NhbC1lbXVsYXRvci1rZXk="
#: Subscriptions only the local stack has: ``all`` sees every event.
LOCAL_SUBSCRIPTIONS: Mapping[str, SubscriptionConfig] = {"all": SubscriptionConfig()}

_QUEUE = "Microsoft.ServiceBus/namespaces/queues"
_TOPIC = "Microsoft.ServiceBus/namespaces/topics"
_SUBSCRIPTION = "Microsoft.ServiceBus/namespaces/topics/subscriptions"
_RULE = "Microsoft.ServiceBus/namespaces/topics/subscriptions/rules"
_NAMESPACE_VARIABLE = "serviceBusNamespaceName"

# Entity properties the emulator cannot (and need not) reproduce: accepted with these
# values only, so turning one of them on in the template is noticed here.
_IGNORED = {
    "requiresSession": False,
    "enablePartitioning": False,
    "enableBatchedOperations": True,  # a client-side batching hint
}
# Accepted with any value: quotas and evaluation options the emulator does not model.
_UNMODELLED = {"maxSizeInMegabytes", "deadLetteringOnFilterEvaluationExceptions"}


class TopologyError(ValueError):
    """The template holds something the emulator would not reproduce faithfully."""


@dataclass(frozen=True)
class Topology:
    """The template's entities: the three names and the emulator configuration of them."""

    intake_queue: str
    polls_queue: str
    events_topic: str
    config: EmulatorConfig

    @property
    def subscriptions(self) -> Mapping[str, SubscriptionConfig]:
        """The template's subscriptions of the events topic (without local additions)."""
        return self.config.topics[self.events_topic].subscriptions


def load_topology(template: Path = TEMPLATE) -> Topology:
    """Derive the entities from ``template`` with its parameter defaults (cached per path)."""
    return _load(template.resolve())


@cache
def _load(template: Path) -> Topology:
    document = json.loads(template.read_text(encoding="utf-8"))
    reader = _TemplateReader(document, template.name)
    names = {
        which: reader.parameter(parameter)
        for which, parameter in (
            ("intake", "intakeQueueName"),
            ("polls", "pollsQueueName"),
            ("topic", "eventsTopicName"),
        )
    }
    queues = {
        reader.entity_path(resource)[0]: _queue(reader.properties(resource))
        for resource in reader.deployed(_QUEUE)
    }
    subscriptions: dict[str, dict[str, Any]] = {}
    for resource in reader.deployed(_SUBSCRIPTION):
        topic_name, name = reader.entity_path(resource)
        subscriptions.setdefault(topic_name, {})[name] = _subscription_options(
            reader.properties(resource)
        )
    for resource in reader.deployed(_RULE):
        topic_name, name, rule = reader.entity_path(resource)
        if rule != "$Default":
            raise TopologyError(
                f"rule {rule!r} of subscription {name!r}: the emulator gives a subscription "
                "one rule, so the template's must be named $Default"
            )
        options = subscriptions.get(topic_name, {}).get(name)
        if options is None:
            raise TopologyError(f"rule of an unknown subscription {topic_name}/{name}")
        options.update(_rule(reader.properties(resource), f"{name}/{rule}"))
    topics = {
        reader.entity_path(resource)[0]: _topic(
            reader.properties(resource),
            {
                name: SubscriptionConfig(**options)
                for name, options in subscriptions.pop(reader.entity_path(resource)[0], {}).items()
            },
        )
        for resource in reader.deployed(_TOPIC)
    }
    if subscriptions:
        raise TopologyError(f"subscriptions of unknown topics: {sorted(subscriptions)}")
    for which in ("intake", "polls"):
        if names[which] not in queues:
            raise TopologyError(f"the template deploys no queue named {names[which]!r}")
    if names["topic"] not in topics:
        raise TopologyError(f"the template deploys no topic named {names['topic']!r}")
    return Topology(
        intake_queue=names["intake"],
        polls_queue=names["polls"],
        events_topic=names["topic"],
        config=EmulatorConfig(queues=queues, topics=topics),
    )


def local_config(
    topology: Topology | None = None,
    *,
    lock_duration: float | None = None,
    max_delivery_count: int | None = None,
    duplicate_detection_window: float | None = None,
    extra_subscriptions: Mapping[str, SubscriptionConfig] | None = None,
) -> EmulatorConfig:
    """The local namespace: the template's entities plus ``LOCAL_SUBSCRIPTIONS`` and the
    pipeline's Send rule on the intake queue.

    ``lock_duration``, ``max_delivery_count`` and ``duplicate_detection_window`` override
    the template's values on both queues (and the window on the topic), for tests that
    need a lock to expire in seconds; None keeps the template's.
    """
    topology = topology or load_topology()
    queue_changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("lock_duration", lock_duration),
            ("max_delivery_count", max_delivery_count),
            ("duplicate_detection_window", duplicate_detection_window),
        )
        if value is not None
    }
    queues = {
        name: replace(queue, **queue_changes) for name, queue in topology.config.queues.items()
    }
    pipeline = AuthorizationRule(PIPELINE_RULE, PIPELINE_KEY, frozenset({"Send"}))
    intake = queues[topology.intake_queue]
    queues[topology.intake_queue] = replace(
        intake, authorization_rules=(*intake.authorization_rules, pipeline)
    )
    events = topology.config.topics[topology.events_topic]
    topic_changes: dict[str, Any] = {
        "subscriptions": {
            **LOCAL_SUBSCRIPTIONS,
            **events.subscriptions,
            **(extra_subscriptions or {}),
        }
    }
    if duplicate_detection_window is not None:
        topic_changes["duplicate_detection_window"] = duplicate_detection_window
    topics = {**topology.config.topics, topology.events_topic: replace(events, **topic_changes)}
    return EmulatorConfig(queues=queues, topics=topics)


# -- reading the template ---------------------------------------------------------------


class _TemplateReader:
    def __init__(self, document: Mapping[str, Any], name: str) -> None:
        self.document = document
        self.name = name

    def parameter(self, name: str) -> Any:
        try:
            value = self.document["parameters"][name]["defaultValue"]
        except KeyError:
            raise TopologyError(f"{self.name}: parameter {name!r} has no defaultValue") from None
        if isinstance(value, str) and value.startswith("["):
            raise TopologyError(f"{self.name}: parameter {name!r} defaults to an expression")
        return value

    def deployed(self, type_: str) -> list[Mapping[str, Any]]:
        """Resources of ``type_`` whose condition holds with the parameter defaults."""
        found = []
        for resource in self.document.get("resources", []):
            if resource.get("type") != type_:
                continue
            condition = resource.get("condition", True)
            if isinstance(condition, str):
                condition = self.parameter(_single_call(condition, "parameters", self.name))
            if not isinstance(condition, bool):
                raise TopologyError(f"{self.name}: condition {condition!r} is not a boolean")
            if condition:
                found.append(resource)
        return found

    def entity_path(self, resource: Mapping[str, Any]) -> list[str]:
        """The name segments after the namespace: [queue], [topic, sub], [topic, sub, rule]."""
        text = resource.get("name", "")
        match = re.fullmatch(r"\[format\('((?:\{\d\}/?)+)', (.*)\)\]", text)
        if match is None:
            raise TopologyError(f"{self.name}: cannot read the resource name {text!r}")
        arguments = [self._argument(a.strip(), text) for a in _split_arguments(match.group(2))]
        segments = match.group(1).split("/")
        values = [arguments[int(segment[1:-1])] for segment in segments]
        if values[0] is not _NAMESPACE:
            raise TopologyError(f"{self.name}: {text!r} does not start with the namespace name")
        if any(value is _NAMESPACE for value in values[1:]):
            raise TopologyError(f"{self.name}: {text!r} names the namespace twice")
        return [str(value) for value in values[1:]]

    def _argument(self, argument: str, text: str) -> Any:
        if argument == f"variables('{_NAMESPACE_VARIABLE}')":
            return _NAMESPACE
        literal = re.fullmatch(r"'([^']*)'", argument)
        if literal:
            return literal.group(1)
        name = re.fullmatch(r"parameters\('([A-Za-z0-9]+)'\)", argument)
        if name:
            value = self.parameter(name.group(1))
            if not isinstance(value, str):
                raise TopologyError(f"{self.name}: {argument} in {text!r} is not a string")
            return value
        raise TopologyError(f"{self.name}: unsupported argument {argument!r} in {text!r}")

    def properties(self, resource: Mapping[str, Any]) -> Mapping[str, Any]:
        properties: Mapping[str, Any] = resource.get("properties", {})
        for key, value in _walk(properties):
            if isinstance(value, str) and value.startswith("["):
                raise TopologyError(
                    f"{self.name}: {resource.get('name')} property {key!r} is an expression"
                )
        return properties


_NAMESPACE = object()


def _single_call(text: str, function: str, where: str) -> str:
    match = re.fullmatch(rf"\[{function}\('([A-Za-z0-9]+)'\)\]", text)
    if match is None:
        raise TopologyError(f"{where}: unsupported expression {text!r}")
    return match.group(1)


def _split_arguments(text: str) -> list[str]:
    parts, depth, current, quoted = [], 0, "", False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [item for key, v in value.items() for item in _walk(v, f"{path}.{key}".lstrip("."))]
    return [(path, value)]


def _take(properties: Mapping[str, Any], known: set[str], what: str) -> dict[str, Any]:
    """The properties the emulator models; refuses unknown ones and ignored ones turned on."""
    taken = {}
    for key, value in properties.items():
        if key in _IGNORED:
            if value != _IGNORED[key]:
                raise TopologyError(f"{what}: {key}={value!r} is not emulated")
        elif key in _UNMODELLED:
            continue
        elif key in known:
            taken[key] = value
        else:
            raise TopologyError(f"{what}: unknown property {key!r} (teach emulators/topology.py)")
    return taken


def _queue(properties: Mapping[str, Any]) -> QueueConfig:
    p = _take(
        properties,
        {
            "lockDuration",
            "maxDeliveryCount",
            "requiresDuplicateDetection",
            "duplicateDetectionHistoryTimeWindow",
            "defaultMessageTimeToLive",
            "deadLetteringOnMessageExpiration",
        },
        "queue",
    )
    return QueueConfig(
        lock_duration=_duration(p.get("lockDuration", "PT1M")),
        max_delivery_count=int(p.get("maxDeliveryCount", 10)),
        duplicate_detection_window=_window(p),
        default_message_time_to_live=_optional_duration(p.get("defaultMessageTimeToLive")),
        dead_lettering_on_message_expiration=bool(p.get("deadLetteringOnMessageExpiration")),
    )


def _topic(
    properties: Mapping[str, Any], subscriptions: Mapping[str, SubscriptionConfig]
) -> TopicConfig:
    p = _take(
        properties,
        {
            "requiresDuplicateDetection",
            "duplicateDetectionHistoryTimeWindow",
            "defaultMessageTimeToLive",
        },
        "topic",
    )
    return TopicConfig(
        subscriptions=subscriptions,
        duplicate_detection_window=_window(p),
        default_message_time_to_live=_optional_duration(p.get("defaultMessageTimeToLive")),
    )


def _subscription_options(properties: Mapping[str, Any]) -> dict[str, Any]:
    p = _take(
        properties,
        {
            "lockDuration",
            "maxDeliveryCount",
            "defaultMessageTimeToLive",
            "deadLetteringOnMessageExpiration",
        },
        "subscription",
    )
    return {
        "lock_duration": _duration(p.get("lockDuration", "PT1M")),
        "max_delivery_count": int(p.get("maxDeliveryCount", 10)),
        "default_message_time_to_live": _optional_duration(p.get("defaultMessageTimeToLive")),
        "dead_lettering_on_message_expiration": bool(p.get("deadLetteringOnMessageExpiration")),
    }


#: CorrelationFilter system properties and the emulator's ``sys.`` filter key for each.
_CORRELATION_SYSTEM = {
    "correlationId": "sys.correlation_id",
    "messageId": "sys.message_id",
    "to": "sys.to",
    "replyTo": "sys.reply_to",
    "label": "sys.subject",
    "sessionId": "sys.session_id",
    "replyToSessionId": "sys.reply_to_session_id",
    "contentType": "sys.content_type",
}


def _rule(properties: Mapping[str, Any], what: str) -> dict[str, Any]:
    kind = properties.get("filterType")
    extra = set(properties) - {"filterType", "sqlFilter", "correlationFilter"}
    if extra:
        raise TopologyError(f"rule {what}: unsupported properties {sorted(extra)} (e.g. actions)")
    if kind == "SqlFilter":
        sql = properties.get("sqlFilter", {})
        if set(sql) != {"sqlExpression"}:
            raise TopologyError(f"rule {what}: sqlFilter must hold only sqlExpression")
        return {"sql_filter": sql["sqlExpression"]}
    if kind == "CorrelationFilter":
        correlation = dict(properties.get("correlationFilter", {}))
        filter_: dict[str, Any] = dict(correlation.pop("properties", {}))
        for key, value in correlation.items():
            if key not in _CORRELATION_SYSTEM:
                raise TopologyError(f"rule {what}: unknown correlationFilter field {key!r}")
            filter_[_CORRELATION_SYSTEM[key]] = value
        return {"filter": filter_}
    raise TopologyError(f"rule {what}: unsupported filterType {kind!r}")


def _window(properties: Mapping[str, Any]) -> float | None:
    if not properties.get("requiresDuplicateDetection"):
        return None
    return _duration(properties.get("duplicateDetectionHistoryTimeWindow", "PT10M"))


def _optional_duration(text: str | None) -> float | None:
    return None if text is None else _duration(text)


_ISO_DURATION = re.compile(
    r"P(?:(?P<d>[0-9]+)D)?(?:T(?=[0-9])(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?"
    r"(?:(?P<s>[0-9]+(?:\.[0-9]+)?)S)?)?"
)


def _duration(text: str) -> float:
    """Seconds of an ISO 8601 day-time duration as Service Bus takes it (``PT1M``, ``P8D``)."""
    match = _ISO_DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT"):
        raise TopologyError(f"not an ISO 8601 day-time duration: {text!r}")
    parts = {key: float(value) if value else 0.0 for key, value in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
