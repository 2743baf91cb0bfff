"""function_app.py as the Functions host sees it: binding metadata, start-up, invocation."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from types import ModuleType

import pytest
from azure.functions.servicebus import ServiceBusMessage

from ops_status.bootstrap import build_dependencies, reset_dependencies, set_dependencies
from ops_status.errors import ConfigurationError
from ops_status.logs import SDK_LOGGERS
from ops_status.observation import StatusRead
from ops_status.settings import load_settings
from tests.conftest import BASE_ENVIRONMENT, sample_bytes
from tests.fakes import RecordingOutputs, ScriptedStatusReader


def import_function_app() -> ModuleType:
    sys.modules.pop("function_app", None)
    return importlib.import_module("function_app")


@pytest.fixture(autouse=True)
def sdk_logger_levels() -> Iterator[None]:
    """Importing function_app quiets the SDK loggers process-wide: undo it afterwards."""
    import logging

    saved = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def function_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for name, value in BASE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    yield import_function_app()
    reset_dependencies()
    sys.modules.pop("function_app", None)


def host_message(
    body: bytes, *, delivery_count: int = 1, enqueued: datetime | None = None
) -> ServiceBusMessage:
    """The object the Python worker hands to a Service Bus trigger."""
    return ServiceBusMessage(
        body=body,
        message_id="host-message-1",
        delivery_count=delivery_count,
        content_type="application/json",
        application_properties={},
        user_properties={},
        sequence_number=42,
        enqueued_time_utc=enqueued or datetime(2026, 11, 28, tzinfo=timezone.utc),
    )


def test_binding_metadata_is_one_queue_trigger_per_queue(function_app: ModuleType) -> None:
    bindings = {}
    for function in function_app.app.get_functions():
        [binding] = json.loads(function.get_function_json())["bindings"]
        bindings[function.get_function_name()] = binding

    assert set(bindings) == {"watch_intake", "watch_polls"}
    assert bindings["watch_intake"]["queueName"] == "%OPS_STATUS_INTAKE_QUEUE%"
    assert bindings["watch_polls"]["queueName"] == "%OPS_STATUS_POLLS_QUEUE%"
    for binding in bindings.values():
        assert binding["type"] == "serviceBusTrigger"
        assert binding["direction"] == "IN"
        assert binding["connection"] == "ServiceBusConnection"
        assert binding["name"] == "message"


def test_the_sdks_log_only_warnings_in_the_function_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    # Given the Python worker's logging: the root logger at INFO, SDK loggers unset
    for name, value in BASE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)

    # When the function app is loaded
    import_function_app()

    # Then the SDKs' INFO lines are not passed on; ours are
    for name in ("azure", "azure.servicebus", "azure.identity", "msal", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    assert logging.getLogger("ops_status.handler").getEffectiveLevel() == logging.INFO
    sys.modules.pop("function_app", None)


def test_import_builds_no_client_and_does_no_io(function_app: ModuleType) -> None:
    from ops_status import bootstrap

    assert bootstrap._dependencies is None


def test_missing_setting_fails_at_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BASE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPS_STATUS_EVENTS_TOPIC")

    with pytest.raises(ConfigurationError, match=r"^OPS_STATUS_EVENTS_TOPIC"):
        import_function_app()
    sys.modules.pop("function_app", None)


def test_the_decorated_function_handles_a_host_message(function_app: ModuleType) -> None:
    outputs = RecordingOutputs()
    set_dependencies(
        build_dependencies(
            load_settings(BASE_ENVIRONMENT),
            status_reader=ScriptedStatusReader([StatusRead("Succeeded")]),
            outputs=outputs,
        )
    )

    function_app.watch_intake(host_message(sample_bytes("watch-parts.json")))

    [event] = outputs.events
    data = json.loads(event.body)["data"]
    assert data["status"] == "Succeeded"
    assert data["submissionId"] == "host-message-1"
    assert data["firstSeen"] == "2026-11-28T00:00:00.000Z"  # the broker's enqueued time


def test_the_polls_trigger_trusts_poll_state_and_the_intake_trigger_does_not(
    function_app: ModuleType,
) -> None:
    outputs = RecordingOutputs()
    set_dependencies(
        build_dependencies(
            load_settings(BASE_ENVIRONMENT),
            status_reader=ScriptedStatusReader([StatusRead("Running")]),
            outputs=outputs,
        )
    )
    now = datetime.now(timezone.utc)
    function_app.watch_intake(host_message(sample_bytes("watch-parts.json"), enqueued=now))
    [(poll, _)] = outputs.scheduled

    function_app.watch_polls(host_message(poll.body, enqueued=now))
    function_app.watch_intake(host_message(poll.body, enqueued=now))

    assert len(outputs.scheduled) == 2
    [rejection] = outputs.events
    assert json.loads(rejection.body)["type"] == "OpsStatus.Watch.Rejected"
