"""Configuration: read once, validated, and every failure names the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops_status.errors import ConfigurationError
from ops_status.settings import SETTINGS_WITH_DEFAULTS, load_settings
from tests.conftest import BASE_ENVIRONMENT

ROOT = Path(__file__).parents[2]


def test_defaults_apply_when_only_required_settings_are_set() -> None:
    settings = load_settings(BASE_ENVIRONMENT)

    assert settings.intake_queue == "intake"
    assert settings.polls_queue == "polls"
    assert settings.events_topic == "events"
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.arm_scope == "https://management.azure.com/.default"
    assert settings.credential == "managedidentity"
    assert settings.service_bus_namespace == "contoso.servicebus.windows.net"
    assert settings.policy.min_delay == float(SETTINGS_WITH_DEFAULTS["OPS_STATUS_POLL_MIN_DELAY"])


def test_explicit_overrides_beat_the_environment() -> None:
    settings = load_settings(BASE_ENVIRONMENT, OPS_STATUS_INTAKE_QUEUE="other")

    assert settings.intake_queue == "other"


@pytest.mark.parametrize("polls", ["intake", "INTAKE"])
def test_the_polls_queue_must_not_be_the_intake_queue(polls: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^OPS_STATUS_POLLS_QUEUE: must differ"):
        load_settings(BASE_ENVIRONMENT, OPS_STATUS_POLLS_QUEUE=polls)


def test_sovereign_cloud_endpoint_changes_the_token_scope() -> None:
    settings = load_settings(
        BASE_ENVIRONMENT, OPS_STATUS_ARM_ENDPOINT="https://management.chinacloudapi.cn/"
    )

    assert settings.arm_scope == "https://management.chinacloudapi.cn/.default"


def test_connection_string_is_accepted_for_an_emulator_and_never_printed() -> None:
    environment = {k: v for k, v in BASE_ENVIRONMENT.items() if "__" not in k}
    environment["ServiceBusConnection"] = (
        "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=SECRETKEY;"
        "UseDevelopmentEmulator=true"
    )

    settings = load_settings(environment)

    assert settings.service_bus_connection_string is not None
    assert "SECRETKEY" not in repr(settings)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("OPS_STATUS_INTAKE_QUEUE", ""),
        ("OPS_STATUS_POLLS_QUEUE", ""),
        ("OPS_STATUS_TOKEN_FAILURE_GRACE", "-1"),
        ("OPS_STATUS_SEND_RETRY_DELAY", "61"),
        ("OPS_STATUS_EVENTS_TOPIC", "bad name!"),
        ("OPS_STATUS_ARM_ENDPOINT", "http://management.azure.com"),
        ("OPS_STATUS_ARM_ENDPOINT", "https://management.azure.com/some/path"),
        ("OPS_STATUS_ARM_ENDPOINT", "https://user@management.azure.com"),
        ("OPS_STATUS_ARM_ENDPOINT", "management.azure.com"),
        ("OPS_STATUS_CREDENTIAL", "password"),
        ("OPS_STATUS_POLL_MIN_DELAY", "soon"),
        ("OPS_STATUS_POLL_MIN_DELAY", "0"),
        ("OPS_STATUS_POLL_MAX_DELAY", "0.5"),
        ("OPS_STATUS_POLL_LEAD", "-1"),
        ("OPS_STATUS_READ_BUDGET_MAX_DELAY", "5"),
        ("OPS_STATUS_POLL_JITTER", "0.9"),
        ("OPS_STATUS_DEFAULT_TIMEOUT", "999999"),
        ("OPS_STATUS_HTTP_READ_TIMEOUT", "-1"),
        ("OPS_STATUS_MAX_TRANSIENT_FAILURES", "x"),
    ],
)
def test_a_bad_setting_fails_with_its_name(setting: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE_ENVIRONMENT, setting: value})

    assert caught.value.setting == setting
    assert str(caught.value).startswith(setting)


def test_missing_service_bus_connection_names_the_identity_based_setting() -> None:
    environment = {k: v for k, v in BASE_ENVIRONMENT.items() if "__" not in k}

    with pytest.raises(ConfigurationError) as caught:
        load_settings(environment)

    assert caught.value.setting == "ServiceBusConnection__fullyQualifiedNamespace"


def test_plain_http_arm_endpoint_is_allowed_only_on_loopback() -> None:
    settings = load_settings(
        {**BASE_ENVIRONMENT, "OPS_STATUS_ARM_ENDPOINT": "http://127.0.0.1:8081"}
    )

    assert settings.arm_endpoint == "http://127.0.0.1:8081"


def test_sample_local_settings_list_every_setting_with_its_default() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]

    for name, default in SETTINGS_WITH_DEFAULTS.items():
        assert name in values, f"{name} missing from local.settings.sample.json"
        # The sample is the playground's (python -m emulators up): its ARM and identity.
        if name not in ("OPS_STATUS_CREDENTIAL", "OPS_STATUS_ARM_ENDPOINT"):
            assert values[name] == default, name
    for required in (
        "OPS_STATUS_INTAKE_QUEUE",
        "OPS_STATUS_POLLS_QUEUE",
        "OPS_STATUS_EVENTS_TOPIC",
        "ServiceBusConnection__fullyQualifiedNamespace",
    ):
        assert required in values
    load_settings(values)


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()

    for name in [
        *SETTINGS_WITH_DEFAULTS,
        "OPS_STATUS_INTAKE_QUEUE",
        "OPS_STATUS_POLLS_QUEUE",
        "OPS_STATUS_EVENTS_TOPIC",
        "ServiceBusConnection__fullyQualifiedNamespace",
    ]:
        assert f"`{name}`" in readme, f"{name} is not documented in README.md"


def test_user_assigned_identity_of_the_trigger_is_used_when_azure_client_id_is_unset() -> None:
    settings = load_settings({**BASE_ENVIRONMENT, "ServiceBusConnection__clientId": "abc"})

    assert settings.client_id == "abc"


def test_two_different_client_ids_are_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            {**BASE_ENVIRONMENT, "ServiceBusConnection__clientId": "abc", "AZURE_CLIENT_ID": "def"}
        )

    assert caught.value.setting == "AZURE_CLIENT_ID"


def test_the_function_timeout_the_handler_budgets_for_is_host_jsons() -> None:
    from ops_status.settings import FUNCTION_TIMEOUT

    hours, minutes, seconds = json.loads((ROOT / "host.json").read_text())["functionTimeout"].split(
        ":"
    )
    assert int(hours) * 3600 + int(minutes) * 60 + float(seconds) == FUNCTION_TIMEOUT
