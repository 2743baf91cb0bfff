"""Telemetry export settings: absent means off; a malformed one stops start-up naming it."""

from __future__ import annotations

import pytest

from ops_status.errors import ConfigurationError
from ops_status.settings import load_settings, load_telemetry_settings
from tests.conftest import BASE_ENVIRONMENT

CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-0000-0000-0000000000a1;"
    "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
    "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/"
)
CLIENT_ID = "5b2f9c1e-0d7a-4c1b-9a51-3f0c2b7d8e14"
AUTHENTICATION_STRING = f"Authorization=AAD;ClientId={CLIENT_ID}"


def test_no_setting_means_no_export() -> None:
    telemetry = load_settings(BASE_ENVIRONMENT).telemetry

    assert not telemetry.exports
    assert telemetry.appinsights_connection_string is None
    assert telemetry.otlp_endpoint is None


def test_empty_values_mean_no_export_as_in_the_local_sample() -> None:
    telemetry = load_telemetry_settings(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "", "OTEL_EXPORTER_OTLP_ENDPOINT": " "}
    )

    assert not telemetry.exports


def test_the_template_form_of_application_insights_with_a_user_assigned_identity() -> None:
    telemetry = load_telemetry_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION_STRING,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={CLIENT_ID};Authorization=AAD",
            "AZURE_CLIENT_ID": CLIENT_ID,
        }
    )

    assert telemetry.exports
    assert telemetry.appinsights_entra
    assert telemetry.appinsights_client_id == CLIENT_ID
    assert CONNECTION_STRING not in repr(telemetry)


def test_system_assigned_entra_authentication_has_no_client_id() -> None:
    telemetry = load_telemetry_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION_STRING,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        }
    )

    assert (telemetry.appinsights_entra, telemetry.appinsights_client_id) == (True, None)


def test_an_otlp_endpoint_alone_exports() -> None:
    telemetry = load_telemetry_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})

    assert telemetry.exports
    assert telemetry.otlp_endpoint == "http://collector:4318"


@pytest.mark.parametrize(
    ("environment", "setting", "words"),
    [
        (
            {"APPLICATIONINSIGHTS_CONNECTION_STRING": "Endpoint=sb://x/"},
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "no InstrumentationKey",
        ),
        (
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                    "InstrumentationKey=k;IngestionEndpoint=http://ingest.example.com/"
                )
            },
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "plain-http IngestionEndpoint",
        ),
        (
            {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=Key"},
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "Authorization=AAD",
        ),
        (
            {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=me"},
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "not a GUID",
        ),
        (
            {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;Secret=x"},
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "must be 'Authorization=AAD'",
        ),
        (
            {
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": AUTHENTICATION_STRING,
                "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000c1",
            },
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "one identity",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "absolute http(s) URL",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/protobuf",
        ),
    ],
)
def test_a_malformed_telemetry_setting_fails_start_up_naming_it(
    environment: dict[str, str], setting: str, words: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE_ENVIRONMENT, **environment})

    assert caught.value.setting == setting
    assert words in str(caught.value)


def test_plain_http_ingestion_is_allowed_on_loopback_for_tests() -> None:
    telemetry = load_telemetry_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                "InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:8090/"
            )
        }
    )

    assert telemetry.exports
