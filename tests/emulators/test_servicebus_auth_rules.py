"""Authorization rules, token verification and claims without sockets (fast, exhaustive).

``test_servicebus_auth.py`` proves the wire with the real SDK; these pin the edges of
the rules: config shape, signature forms, audiences, scopes, expiry, bearer tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from azure.servicebus._pyamqp.utils import generate_sas_token

from emulators.servicebus import (
    AuthorizationRule,
    ConfigError,
    EmulatorConfig,
    QueueConfig,
    ServiceBusEmulator,
    SubscriptionConfig,
    TopicConfig,
    load_config,
)
from emulators.servicebus.__main__ import banner
from emulators.servicebus.auth import Authorizer, TokenRejectedError

NOW = 1_800_000_000
HOST = "127.0.0.1:5672"
ROOT = AuthorizationRule("RootManageSharedAccessKey", "root-key", {"Manage"})


def _config() -> EmulatorConfig:
    return EmulatorConfig(
        queues={
            "intake": QueueConfig(
                authorization_rules=[AuthorizationRule("pipelines", "k1", ["send"])]
            ),
            "polls": QueueConfig(),
        },
        topics={
            "events": TopicConfig(
                subscriptions={"all": SubscriptionConfig()},
                authorization_rules=[AuthorizationRule("subs", "k2", {"Listen"})],
            )
        },
        authorization_rules=[AuthorizationRule("ops", "k3", {"Manage"})],
    )


def _authorizer(**token_rights: Any) -> Authorizer:
    return Authorizer(_config(), ROOT, token_rights=token_rights or None, wall=lambda: NOW)


def _sas(resource: str, key_name: str, key: str, expiry: int = NOW + 60) -> str:
    return generate_sas_token(f"sb://{HOST}/{resource}".rstrip("/"), key_name, key, expiry)


def _rights(authorizer: Authorizer, audience: str, token: str, path: str) -> set[str]:
    grant = authorizer.put_token(f"sb://{HOST}/{audience}", token)
    return set(authorizer.rights([grant], path))


def _reason(authorizer: Authorizer, audience: str, token: str) -> str:
    with pytest.raises(TokenRejectedError) as refused:
        authorizer.put_token(f"sb://{HOST}/{audience}", token)
    assert refused.value.status_code == 401
    return refused.value.reason


def test_rule_rights_apply_under_the_audience_only() -> None:
    auth = _authorizer()
    # an entity-level Send rule: Send on its queue, nothing below another audience
    assert _rights(auth, "intake", _sas("intake", "pipelines", "k1"), "intake") == {"Send"}
    assert _rights(auth, "intake", _sas("intake", "pipelines", "k1"), "polls") == set()
    # a topic rule covers the topic's subscriptions (and their dead-letter queues)
    token = _sas("events", "subs", "k2")
    sub = "events/subscriptions/all/$deadletterqueue"
    assert _rights(auth, "events/Subscriptions/all", token, sub) == {"Listen"}
    # Manage implies Listen and Send; namespace rules sign for any entity
    for rule, key in (("RootManageSharedAccessKey", "root-key"), ("ops", "k3")):
        assert _rights(auth, "polls", _sas("polls", rule, key), "polls") == {
            "Listen",
            "Send",
            "Manage",
        }
    # a namespace token (sr = the namespace) put for an entity is valid for it
    assert _rights(auth, "polls", _sas("", "ops", "k3"), "polls/$management") == {
        "Listen",
        "Send",
        "Manage",
    }


@pytest.mark.parametrize(
    ("audience", "token", "reason"),
    [
        ("polls", _sas("intake", "pipelines", "k1"), "InvalidAudience"),
        ("intakeX", _sas("intake", "pipelines", "k1"), "InvalidAudience"),  # segment-wise
        ("intake", _sas("", "pipelines", "k1"), "InvalidSignature"),  # rule not on a parent
        ("polls", _sas("polls", "pipelines", "k1"), "InvalidSignature"),  # rule elsewhere
        ("polls", _sas("polls", "subs", "k2"), "InvalidSignature"),
        ("polls", _sas("polls", "ops", "wrong-key"), "InvalidSignature"),
        ("polls", _sas("polls", "nobody", "k3"), "InvalidSignature"),
        ("polls", _sas("polls", "ops", "k3", expiry=NOW), "ExpiredToken"),
        ("polls", _sas("polls", "ops", "k3").replace("&skn=ops", ""), "MalformedToken"),
        ("polls", _sas("polls", "ops", "k3") + "&se=1", "MalformedToken"),
        ("polls", "SharedAccessSignature sr=x&sig=y&se=soon&skn=ops", "MalformedToken"),
    ],
)
def test_bad_sas_tokens_are_refused_with_service_bus_reasons(
    audience: str, token: str, reason: str
) -> None:
    assert _reason(_authorizer(), audience, token) == reason


def test_signature_is_checked_over_the_resource_as_the_token_spells_it() -> None:
    # given a token built like the docs' C# sample (HttpUtility.UrlEncode: lower-case hex),
    # which differs from the Python SDK's quote_plus spelling of the same resource
    resource = quote_plus(f"sb://{HOST}/polls").replace("%3A", "%3a").replace("%2F", "%2f")
    expiry = str(NOW + 60)
    digest = hmac.new(b"k3", f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    token = f"SharedAccessSignature sig={signature}&se={expiry}&skn=ops&sr={resource}"
    # then it verifies, fields in any order
    assert _rights(_authorizer(), "polls", token, "polls") == {"Listen", "Send", "Manage"}
    # and the same signature over another spelling does not
    respelled = token.replace("%3a", "%3A")
    assert _reason(_authorizer(), "polls", respelled) == "InvalidSignature"


def test_grants_lapse_when_the_token_expires() -> None:
    now = [NOW]
    auth = Authorizer(_config(), ROOT, wall=lambda: now[0])
    grant = auth.put_token(f"sb://{HOST}/polls", _sas("polls", "ops", "k3", expiry=NOW + 10))
    assert "Send" in auth.rights([grant], "polls")
    now[0] = NOW + 10
    assert auth.rights([grant], "polls") == frozenset()


def test_bearer_tokens_may_do_everything_unless_listed() -> None:
    auth = _authorizer(
        **{"app-jwt": {"polls": ["Send"], "events": {"listen"}}, "ns-jwt": {"*": {"Send"}}}
    )
    assert _rights(auth, "intake", "anyone", "intake") == {"Listen", "Send", "Manage"}
    assert _rights(auth, "polls", "app-jwt", "polls") == {"Send"}
    assert _rights(auth, "intake", "app-jwt", "intake") == set()
    assert _rights(auth, "events/Subscriptions/all", "app-jwt", "events/subscriptions/all") == {
        "Listen"
    }
    assert _rights(auth, "intake", "ns-jwt", "intake") == {"Send"}


@pytest.mark.parametrize(
    ("token_rights", "complaint"),
    [
        ({"t": {"nope": {"Send"}}}, "unknown entity"),
        ({"t": {"polls": {"Write"}}}, "unknown right"),
        ({"t": {"polls": []}}, "must not be empty"),
        ({"t": {"polls": "Send"}}, "must be a list"),
        ({"SharedAccessSignature sr=x": {"polls": {"Send"}}}, "bearer tokens"),
    ],
)
def test_token_rights_errors_are_explicit(token_rights: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Authorizer(_config(), ROOT, token_rights=token_rights)


def test_rules_round_trip_through_json(tmp_path: Path) -> None:
    raw = {
        "authorization_rules": [{"key_name": "ops", "key": "k3", "rights": ["Manage"]}],
        "queues": {
            "intake": {
                "authorization_rules": [
                    {"key_name": "pipelines", "key": "k1", "rights": ["send", "Listen"]}
                ]
            }
        },
        "topics": {
            "events": {
                "authorization_rules": [{"key_name": "subs", "key": "k2", "rights": ["Listen"]}],
                "subscriptions": {"all": {}},
            }
        },
    }
    path = tmp_path / "entities.json"
    path.write_text(json.dumps(raw))
    config = load_config(path)
    (rule,) = config.queues["intake"].authorization_rules
    assert (rule.key_name, rule.rights) == ("pipelines", frozenset({"Send", "Listen"}))
    assert config.topics["events"].authorization_rules[0].rights == {"Listen"}
    assert config.authorization_rules[0].effective_rights == {"Listen", "Send", "Manage"}
    assert EmulatorConfig.from_dict(config.to_dict()) == config
    assert "k1" not in repr(config)  # keys never show in reprs (and so in logs)


def _rule(**overrides: Any) -> dict[str, Any]:
    return {"key_name": "r", "key": "k", "rights": ["Send"], **overrides}


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ({"queues": {"q": {"authorization_rules": [_rule(secret=1)]}}}, "unknown key"),
        ({"queues": {"q": {"authorization_rules": [{"key_name": "r"}]}}}, "lacks"),
        ({"queues": {"q": {"authorization_rules": [_rule(rights=["Write"])]}}}, "unknown right"),
        ({"queues": {"q": {"authorization_rules": [_rule(rights=[])]}}}, "must not be empty"),
        ({"queues": {"q": {"authorization_rules": [_rule(key="")]}}}, "non-empty key"),
        ({"queues": {"q": {"authorization_rules": [_rule(key_name="-x")]}}}, "key_name"),
        ({"queues": {"q": {"authorization_rules": [_rule(key_name="a" * 51)]}}}, "key_name"),
        ({"queues": {"q": {"authorization_rules": [_rule(), _rule(key_name="R")]}}}, "twice"),
        ({"queues": {"q": {"authorization_rules": _rule()}}}, "must be a JSON list"),
        (
            {"authorization_rules": [_rule(key_name=f"r{i}") for i in range(13)]},
            "12 per level",
        ),
        (
            {"topics": {"t": {"subscriptions": {"s": {"authorization_rules": []}}}}},
            "unknown key",
        ),
    ],
)
def test_rule_config_errors_are_explicit(raw: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        EmulatorConfig.from_dict(raw)


def test_the_root_rule_is_built_in_and_counts_towards_the_limit() -> None:
    redefined = [AuthorizationRule("RootManageSharedAccessKey", "other", {"Send"})]
    with pytest.raises(ConfigError, match="built in"):
        ServiceBusEmulator(authorization_rules=redefined)
    twelve = [AuthorizationRule(f"r{i}", "k", {"Send"}) for i in range(12)]
    with pytest.raises(ConfigError, match="root included"):
        ServiceBusEmulator(authorization_rules=twelve)


@pytest.fixture
def started() -> Iterator[ServiceBusEmulator]:
    with ServiceBusEmulator(config=_config()) as emu:
        yield emu


def test_connection_strings_are_the_portals_for_each_rule(started: ServiceBusEmulator) -> None:
    endpoint = f"Endpoint=sb://127.0.0.1:{started.port}"
    assert started.connection_string_for("ops") == (
        f"{endpoint};SharedAccessKeyName=ops;SharedAccessKey=k3;UseDevelopmentEmulator=true"
    )
    assert started.connection_string_for("pipelines", "intake") == (
        f"{endpoint};SharedAccessKeyName=pipelines;SharedAccessKey=k1;EntityPath=intake;"
        "UseDevelopmentEmulator=true"
    )
    assert started.connection_string == started.connection_string_for("RootManageSharedAccessKey")
    for rule, entity in (("pipelines", None), ("ops", "intake"), ("nope", "intake")):
        with pytest.raises(KeyError):
            started.connection_string_for(rule, entity)
    with pytest.raises(KeyError, match="no queue or topic"):
        started.connection_string_for("subs", "events/subscriptions/all")
    # and the CLI prints one per rule besides the root's, without logging them
    lines = banner(started)
    assert lines[2] == f"Connection string: {started.connection_string}"
    assert lines[3:] == [
        f"Connection string (ops on namespace, Manage): {started.connection_string_for('ops')}",
        "Connection string (pipelines on intake, Send): "
        + started.connection_string_for("pipelines", "intake"),
        "Connection string (subs on events, Listen): "
        + started.connection_string_for("subs", "events"),
    ]
