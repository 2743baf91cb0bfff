"""The SQL filter subset of the emulator: exactly what the deployment template uses.

Service Bus SQL filter syntax (learn.microsoft.com/azure/service-bus-messaging/
service-bus-messaging-sql-filter): ``[scope.]name`` with scope ``user`` (the default) or
``sys``; string constants in single quotes, ``''`` for a quote. The emulator knows one
predicate, ``prop = 'text'`` or ``prop IN ('a', ...)``, and refuses the rest by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from emulators.servicebus import ConfigError, EmulatorConfig, SubscriptionConfig, TopicConfig
from emulators.servicebus.config import AnyOf, parse_sql_filter


@pytest.mark.parametrize(
    ("expression", "compiled"),
    [
        ("status = 'Succeeded'", {"status": "Succeeded"}),
        ("user.status = 'it''s'", {"status": "it's"}),
        (
            "status IN ('Failed', 'Canceled', 'TimedOut', 'Rejected')",
            {"status": AnyOf(["Failed", "Canceled", "TimedOut", "Rejected"])},
        ),
        ("  status in('Failed')  ", {"status": AnyOf(["Failed"])}),
        ("sys.CorrelationId = 'run-1'", {"sys.CorrelationId": "run-1"}),
    ],
)
def test_the_template_subset_compiles_to_a_filter_mapping(
    expression: str, compiled: dict[str, Any]
) -> None:
    assert parse_sql_filter(expression) == compiled


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "status",
        "status = 1",
        "status <> 'Failed'",
        "status NOT IN ('Failed')",
        "status IN ()",
        "status IN ('Failed',)",
        "status LIKE 'F%'",
        "status IS NULL",
        "EXISTS (status)",
        "status = 'Failed' AND correlationId = 'x'",
        "status = 'Failed' OR status = 'Canceled'",
        "(status = 'Failed')",
        'status = "Failed"',
        "status = 'unterminated",
        "other.status = 'Failed'",
        "NOT = 'Failed'",
    ],
)
def test_everything_else_is_refused_with_the_expression_named(expression: str) -> None:
    with pytest.raises(ConfigError, match="unsupported SQL filter"):
        parse_sql_filter(expression)


def test_an_unknown_system_property_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"sys\.Nope"):
        parse_sql_filter("sys.Nope = 'x'")


def test_any_of_equals_each_member_and_nothing_else() -> None:
    statuses = AnyOf(["Failed", "Canceled"])

    assert statuses == "Failed"
    assert "Canceled" == statuses  # noqa: SIM300 - the broker compares in this order
    assert statuses != "Succeeded"
    assert statuses != "failed"
    assert statuses != 1
    assert statuses == AnyOf(["Canceled", "Failed"])
    assert hash(statuses) == hash(AnyOf(["Canceled", "Failed"]))
    with pytest.raises(ConfigError):
        AnyOf([])


def test_a_sql_subscription_round_trips_through_json_and_replace() -> None:
    sql = "status IN ('Failed', 'TimedOut')"
    config = EmulatorConfig(
        topics={"events": TopicConfig(subscriptions={"failed": SubscriptionConfig(sql_filter=sql)})}
    )

    raw = config.to_dict()

    assert raw["topics"]["events"]["subscriptions"]["failed"]["sql_filter"] == sql
    assert "filter" not in raw["topics"]["events"]["subscriptions"]["failed"]
    assert EmulatorConfig.from_dict(raw) == config
    failed = config.topics["events"].subscriptions["failed"]
    assert dataclasses.replace(failed, lock_duration=5.0).filter == failed.filter


def test_a_subscription_takes_one_kind_of_filter() -> None:
    with pytest.raises(ConfigError, match="not both"):
        SubscriptionConfig(filter={"status": "Failed"}, sql_filter="status = 'Canceled'")
