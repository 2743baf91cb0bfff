"""The command line: arguments → watch request and settings, outcomes → exit codes, help.

Pure: nothing here opens a connection (``submit --dry-run`` validates without sending).

Long because every flag and exit code the command line promises has a test here.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from ops_status import cli
from ops_status.cli import check, options, output, wiring
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.request import parse_watch_request, submission_key
from tests.contracts import assert_valid_watch_request

SUBSCRIPTION = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
STATUS_URL = (
    f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Cache/"
    "locations/westus/operationsStatus/op-1?api-version=2025-07-01"
)
SETTING_NAMES = [
    "ServiceBusConnection",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "OPS_STATUS_INTAKE_QUEUE",
    "OPS_STATUS_EVENTS_TOPIC",
    "OPS_STATUS_ARM_ENDPOINT",
    "OPS_STATUS_CREDENTIAL",
    "AZURE_CLIENT_ID",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> Iterator[None]:
    """Each test starts from no ops-status settings at all (and its own submit history),
    and leaves logging as it was."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPS_STATUS_SUBMIT_HISTORY", str(tmp_path / "submitted.json"))
    loggers = [logging.getLogger(name) for name in ("azure", "uamqp", "msal", "urllib3")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def parse(*argv: str) -> argparse.Namespace:
    return cli.parse_arguments(list(argv))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- help and usage -------------------------------------------------------------------

COMMAND_FLAGS = {
    "submit": [
        "--status-url", "--subscription", "--location", "--operation-id", "--api-version",
        "--correlation-id", "--timeout", "--deadline", "--context", "--context-json",
        "--namespace", "--connection-string", "--queue", "--arm-endpoint", "--credential",
        "--dry-run", "--json",
    ],
    "check": ["--status-url", "--operation-id", "--correlation-id", "--arm-endpoint", "--json"],
    "watch": ["--status-url", "--operation-id", "--timeout", "--deadline", "--json"],
    "listen": [
        "--subscription-name", "--operation-id", "--correlation-id", "--timeout",
        "--max-events", "--complete", "--namespace", "--connection-string", "--topic", "--json",
    ],
    "ls": [
        "--correlation-id", "--subscription", "--status", "--namespace", "--connection-string",
        "--queue", "--arm-endpoint", "--credential", "--json",
    ],
    "worker": ["--concurrency", "--max-lock-renewal", "--processes"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMAND_FLAGS))
def test_every_command_help_has_a_description_an_example_exit_codes_and_every_flag(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])

    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example:" in text
    assert f"python -m ops_status {command}" in text
    assert "exit codes" in text
    for flag in [*COMMAND_FLAGS[command], "--debug", "--log-level"]:
        assert flag in text, flag


#: What exit code 0 means for each command, as the top-level help says it.
SUCCESS_WORDS = {
    "submit": "watch submitted",
    "check": "operation succeeded",
    "watch": "operation succeeded",
    "listen": "listener done",
    "ls": "watches listed",
    "worker": "worker stopped",
}


def test_top_level_help_lists_every_command_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])

    text = capsys.readouterr().out
    for command in COMMAND_FLAGS:
        assert command in text
    for code in ("0", "1", "2", "3", "4", "5", "64"):
        assert re.search(rf"^\s+{code}\s", text, re.MULTILINE), code
    # Exit 0 says what success is for every command, so a new command must say it too.
    success = re.search(r"^\s+0\s+(.*?)^\s+1\s", text, re.MULTILINE | re.DOTALL)
    assert success is not None
    said = " ".join(success.group(1).split())
    assert set(SUCCESS_WORDS) == set(COMMAND_FLAGS)
    for command, words in SUCCESS_WORDS.items():
        assert words in said, command


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["submit", "--no-such-flag"],
        ["listen"],  # --subscription-name is required
        ["listen", "--subscription-name", "s", "--timeout", "soon"],
        ["submit", "--namespace", "a.servicebus.windows.net", "--connection-string", "x"],
    ],
)
def test_argument_errors_exit_64_not_2_which_means_timed_out(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)

    assert exit_info.value.code == output.EXIT_USAGE == 64
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        # An abbreviation is refused, and the hint names the flag it abbreviates.
        (["listen", "--subscription", "s"], "did you mean --subscription-name?"),
        (["submit", "--dry", "--status-url", STATUS_URL], "did you mean --dry-run?"),
        (["listen", "--subscription-name", "s", "--timout", "3"], "did you mean --timeout?"),
        (["check", "--status-url", STATUS_URL, "--jsn"], "did you mean --json?"),
        # A shortened flag too far from the whole one for difflib: the prefix decides.
        (
            ["submit", "--dry-run", "--corr", "y", "--status-url", STATUS_URL],
            "did you mean --correlation-id?",
        ),
        (["lisen", "--subscription-name", "s"], "did you mean ops-status listen?"),
    ],
)
def test_a_typo_prints_the_commands_usage_on_one_line_and_a_hint(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)

    assert exit_info.value.code == 64
    usage, error, hint_line = capsys.readouterr().err.splitlines()
    command = argv[0] if argv[0] in COMMAND_FLAGS else None
    assert usage.startswith(f"usage: ops-status {command}" if command else "usage: ops-status ")
    assert "error:" in error
    assert hint_line.endswith(hint)


def test_the_one_line_usage_shows_the_commands_required_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["listen"])

    usage = capsys.readouterr().err.splitlines()[0]
    assert usage == (
        "usage: ops-status listen --subscription-name NAME [options]   "
        "(see: ops-status listen --help)"
    )


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["check", "--status-url", "https://evil.example.com/x"], 64),  # invalid request
        (["listen", "--subscription-name", "s", "--max-events", "0"], 64),  # usage
        (["submit", "--status-url", STATUS_URL, "--correlation-id", "r"], 64),  # no queue set
    ],
)
def test_debug_adds_the_traceback_and_keeps_the_exit_code(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, _, plain_err = run(capsys, *argv)
    debug, _, debug_err = run(capsys, *argv, "--debug")

    assert plain == debug == code
    assert "Traceback" not in plain_err
    assert debug_err.startswith("Traceback (most recent call last):")
    assert debug_err.splitlines()[-1] == plain_err.splitlines()[-1]


def test_submit_warns_when_the_deadline_is_already_past(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys, "submit", "--dry-run", "--status-url", STATUS_URL, "--correlation-id", "r",
        "--deadline", "2020-01-01T00:00:00Z",
    )  # fmt: skip

    assert code == 0
    assert out.strip() == submission_key(
        parse_watch_request(
            json.dumps({"statusUrl": STATUS_URL, "correlationId": "r"}).encode(),
            arm_endpoint="https://management.azure.com",
        )
    )
    assert err == (
        "ops-status: warning: --deadline 2020-01-01T00:00:00+00:00 is already past: the watch "
        "reads the operation once and ends with what that read finds (TimedOut if it is "
        "still running)\n"
    )


def test_a_future_deadline_gives_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "submit", "--dry-run", "--status-url", STATUS_URL, "--correlation-id", "r",
        "--deadline", "2999-01-01T00:00:00Z",
    )  # fmt: skip

    assert (code, err) == (0, "")


# -- the watch request the flags describe ---------------------------------------------


def test_parts_become_the_request_fields() -> None:
    body = options.watch_body(
        parse(
            "submit", "--subscription", SUBSCRIPTION, "--location", "West US",
            "--operation-id", "op-1", "--api-version", "2024-10-01", "--correlation-id", "run-1",
        )
    )  # fmt: skip

    assert body == {
        "subscriptionId": SUBSCRIPTION,
        "location": "West US",
        "operationId": "op-1",
        "apiVersion": "2024-10-01",
        "correlationId": "run-1",
    }
    assert_valid_watch_request(body)


def test_timeout_is_a_json_number_and_context_values_stay_strings() -> None:
    body = options.watch_body(
        parse(
            "submit", "--status-url", STATUS_URL, "--timeout", "3600", "--deadline",
            "2030-01-01T00:00:00Z", "--context", "run=0042", "--context", "sha=1e10",
            "--context", "note=a=b",
        )
    )  # fmt: skip

    assert body["timeout"] == 3600
    assert isinstance(body["timeout"], int)
    assert body["deadline"] == "2030-01-01T00:00:00Z"
    # "0042" and "1e10" would change as JSON numbers; a value keeps every "=" after the first.
    assert body["context"] == {"run": "0042", "sha": "1e10", "note": "a=b"}
    assert_valid_watch_request(body)


def test_context_json_gives_typed_values_and_merges_with_key_value_pairs() -> None:
    body = options.watch_body(
        parse(
            "submit", "--status-url", STATUS_URL, "--context-json", '{"run": 4711, "dry": false}',
            "--context", "stage=prod",
        )
    )  # fmt: skip

    assert body["context"] == {"run": 4711, "dry": False, "stage": "prod"}


@pytest.mark.parametrize("timeout", ["1.5", "90"])
def test_plain_decimal_timeouts_become_numbers(timeout: str) -> None:
    body = options.watch_body(parse("submit", "--status-url", STATUS_URL, "--timeout", timeout))
    assert body["timeout"] == float(timeout)


def test_a_timeout_that_is_not_a_plain_number_is_left_for_the_validator() -> None:
    body = options.watch_body(parse("submit", "--status-url", STATUS_URL, "--timeout", "1h"))
    assert body["timeout"] == "1h"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--status-url", STATUS_URL, "--operation-id", "op-1"], "not both"),
        (["--operation-id", "op-1"], "missing: --subscription, --location"),
        ([], "name the operation"),
        (["--status-url", STATUS_URL, "--api-version", "2024-10-01"], "--api-version"),
        (["--status-url", STATUS_URL, "--context", "novalue"], "KEY=VALUE"),
        (["--status-url", STATUS_URL, "--context", "=x"], "KEY=VALUE"),
        (["--status-url", STATUS_URL, "--context-json", "[1]"], "JSON object"),
        (["--status-url", STATUS_URL, "--context-json", "{oops"], "not valid JSON"),
        (
            ["--status-url", STATUS_URL, "--context-json", '{"a": 1}', "--context", "a=2"],
            "given twice",
        ),
    ],
)
def test_contradictory_or_incomplete_flags_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(cli.UsageError, match=re.escape(message)):
        options.watch_body(parse("submit", *argv))


# -- submit without sending -----------------------------------------------------------


def test_dry_run_prints_the_message_id_a_retried_step_would_get_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["submit", "--dry-run", "--status-url", STATUS_URL, "--correlation-id", "run-1"]

    first = run(capsys, *argv)
    second = run(capsys, *argv)

    expected = submission_key(
        parse_watch_request(
            json.dumps({"statusUrl": STATUS_URL, "correlationId": "run-1"}),
            arm_endpoint="https://management.azure.com",
        )
    )
    assert first == second == (0, expected + "\n", "")


def test_dry_run_json_shows_the_validated_body_and_the_message_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "submit", "--dry-run", "--json", "--subscription", SUBSCRIPTION,
        "--location", "West US", "--operation-id", "op-1", "--correlation-id", "run-1",
    )  # fmt: skip

    document = json.loads(out)
    assert code == 0
    assert document["sent"] is False
    assert re.fullmatch("[0-9a-f]{32}", document["messageId"])
    assert "eventId" not in document  # given at intake, from the broker's identity
    # What goes on the queue is the normalised request (region, default api-version).
    assert document["body"]["location"] == "westus"
    assert document["body"]["apiVersion"] == "2025-07-01"
    assert_valid_watch_request(document["body"])
    assert document["queue"] is None  # none named: nothing to show


def test_dry_run_json_names_the_queue_it_would_send_to_when_one_is_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_STATUS_INTAKE_QUEUE", "ops-status-intake")

    code, out, _ = run(capsys, "submit", "--dry-run", "--json", "--status-url", STATUS_URL)

    assert code == 0
    assert json.loads(out)["queue"] == "ops-status-intake"
    assert json.loads(out)["sent"] is False


def test_submit_without_a_correlation_id_warns_but_succeeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "submit", "--dry-run", "--status-url", STATUS_URL)

    assert code == 0
    assert re.fullmatch("[0-9a-f]{32}", out.strip())
    assert "warning: no --correlation-id" in err


def test_an_invalid_request_fails_with_64_and_every_reason_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys, "submit", "--dry-run", "--status-url",
        "https://evil.example.com/subscriptions/x/operations/1?api-version=2025-07-01",
        "--correlation-id", "has\ttab", "--timeout", "-5",
    )  # fmt: skip

    assert code == 64
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("ops-status: error: invalid watch request: ")
    # Each problem names the flag the user typed, not the JSON field it became.
    for reason in (
        "--status-url must point at",
        "--correlation-id must be 1-128 printable",
        "--timeout must be a number",
    ):
        assert reason in err
    assert "statusUrl" not in err


def test_a_timeout_above_the_configured_maximum_is_refused_as_the_function_would(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_STATUS_MAX_TIMEOUT", "600")
    monkeypatch.setenv("OPS_STATUS_DEFAULT_TIMEOUT", "300")

    code, _, err = run(
        capsys, "submit", "--dry-run", "--status-url", STATUS_URL, "--correlation-id", "r",
        "--timeout", "601",
    )  # fmt: skip

    assert code == 64
    assert "timeout must not exceed 600 seconds" in err


def test_a_status_url_for_another_arm_endpoint_is_valid_when_that_endpoint_is_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sovereign = STATUS_URL.replace("management.azure.com", "management.chinacloudapi.cn")

    refused, _, _ = run(capsys, "submit", "--dry-run", "--status-url", sovereign)
    accepted, _, _ = run(
        capsys, "submit", "--dry-run", "--status-url", sovereign,
        "--arm-endpoint", "https://management.chinacloudapi.cn",
    )  # fmt: skip

    assert (refused, accepted) == (64, 0)


# -- settings -------------------------------------------------------------------------


def test_check_and_watch_need_no_service_bus_queue_or_topic() -> None:
    settings = wiring.arm_settings(parse("check", "--status-url", STATUS_URL))

    assert settings.arm_endpoint == "https://management.azure.com"
    assert not hasattr(settings, "intake_queue")
    assert not hasattr(settings, "service_bus_namespace")


def test_the_cli_defaults_to_the_default_azure_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert wiring.arm_settings(parse("check", "--status-url", STATUS_URL)).credential == "default"

    monkeypatch.setenv("OPS_STATUS_CREDENTIAL", "managedidentity")
    assert wiring.arm_settings(parse("check", "--status-url", STATUS_URL)).credential == (
        "managedidentity"
    )
    flagged = parse("check", "--status-url", STATUS_URL, "--credential", "default")
    assert wiring.arm_settings(flagged).credential == "default"


def test_flags_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_STATUS_INTAKE_QUEUE", "env-queue")
    monkeypatch.setenv(
        "ServiceBusConnection__fullyQualifiedNamespace", "env.servicebus.windows.net"
    )
    monkeypatch.setenv("OPS_STATUS_ARM_ENDPOINT", "https://management.usgovcloudapi.net")

    args = parse(
        "submit", "--status-url", STATUS_URL, "--queue", "flag-queue",
        "--connection-string", "Endpoint=sb://flag.servicebus.windows.net/;SharedAccessKeyName=k;"
        "SharedAccessKey=secret", "--arm-endpoint", "https://management.azure.com",
    )  # fmt: skip
    service_bus = wiring.service_bus_settings(args)

    assert wiring.entity_name(args, "OPS_STATUS_INTAKE_QUEUE") == "flag-queue"
    assert service_bus.service_bus_namespace is None
    assert service_bus.service_bus_connection_string is not None
    assert "flag.servicebus" in service_bus.service_bus_connection_string
    assert wiring.arm_settings(args).arm_endpoint == "https://management.azure.com"


def test_a_namespace_flag_beats_a_connection_string_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ServiceBusConnection", "Endpoint=sb://env.servicebus.windows.net/;x=y")
    args = parse("listen", "--subscription-name", "s", "--namespace", "f.servicebus.windows.net")
    monkeypatch.setenv("OPS_STATUS_EVENTS_TOPIC", "events")

    settings = wiring.service_bus_settings(args)

    assert settings.service_bus_namespace == "f.servicebus.windows.net"
    assert settings.service_bus_connection_string is None


def test_a_missing_setting_names_the_setting_and_the_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ServiceBusConnection__fullyQualifiedNamespace", "a.servicebus.windows.net")

    code, _, err = run(capsys, "submit", "--status-url", STATUS_URL, "--correlation-id", "r")

    assert code == 64
    assert err == (
        "ops-status: error: OPS_STATUS_INTAKE_QUEUE: is required but not set "
        "(set it, or pass --queue)\n"
    )


def test_a_setting_the_command_does_not_use_is_not_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ServiceBusConnection", "not a connection string")
    monkeypatch.setenv("OPS_STATUS_INTAKE_QUEUE", "bad queue name!")

    code, _, _ = run(capsys, "submit", "--dry-run", "--status-url", STATUS_URL)

    assert code == 0


# -- outcomes to exit codes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("observation", "outcome", "code"),
    [
        (StatusRead("Succeeded"), "Succeeded", 0),
        (StatusRead("completed"), "Succeeded", 0),
        (StatusRead("Failed", error={"code": "X"}), "Failed", 1),
        (StatusRead("Canceled"), "Canceled", 1),
        (StatusRead("Cancelled"), "Canceled", 1),
        (StatusRead("Running", percent_complete=40), "Running", 3),
        (StatusRead("Accepted"), "Running", 3),
        (ReadFailure(ReadFailureKind.NOT_FOUND, "HTTP 404", 404), "Unreadable", 4),
        (ReadFailure(ReadFailureKind.THROTTLED, "HTTP 429", 429), "Unreadable", 4),
        (ReadFailure(ReadFailureKind.TRANSIENT, "timeout: ReadTimeout"), "Unreadable", 4),
        (ReadFailure(ReadFailureKind.UNAUTHORIZED, "HTTP 403", 403), "Unreadable", 4),
    ],
)
def test_check_maps_one_read_to_an_outcome_and_an_exit_code(
    observation: Any, outcome: str, code: int
) -> None:
    assert check.check_outcome(observation) == (outcome, code)
    assert check.observation_document(observation, outcome)["outcome"] == outcome


@pytest.mark.parametrize(
    ("status", "code"),
    [("Succeeded", 0), ("Failed", 1), ("Canceled", 1), ("Rejected", 1), ("TimedOut", 2)],
)
def test_watch_and_listen_map_the_final_status_to_0_1_2(status: str, code: int) -> None:
    assert output.EXIT_BY_STATUS.get(status, output.EXIT_FAILED) == code


def test_unexpected_errors_are_one_line_with_exit_5_and_a_traceback_only_with_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Exploding:
        def get_operation_status(self, request: object) -> Any:
            raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(wiring, "status_reader", lambda settings: Exploding())

    code, out, err = run(capsys, "check", "--status-url", STATUS_URL)
    assert (code, out) == (5, "")
    assert err == (
        "ops-status: error: unexpected RuntimeError('boom\\nsecond line') "
        "(--debug shows the traceback)\n"
    )
    code, out, err = run(capsys, "check", "--status-url", STATUS_URL, "--debug")
    assert (code, out) == (5, "")
    assert err.startswith("Traceback (most recent call last):\n")
    assert "RuntimeError: boom" in err
    assert err.endswith("ops-status: error: unexpected RuntimeError('boom\\nsecond line')\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--complete", "--correlation-id", "run-1"], "--complete takes every event"),
        (["--max-events", "0"], "--max-events must be at least 1"),
        (["--timeout", "0"], "--timeout must be a positive number"),
    ],
)
def test_listen_refuses_contradictions_before_connecting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "listen", "--subscription-name", "s", *argv)

    assert (code, out) == (64, "")
    assert message in err


@pytest.mark.parametrize("deadline", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_deadline_outside_the_utc_range_is_a_usage_error_not_a_crash(
    capsys: pytest.CaptureFixture[str], deadline: str
) -> None:
    code, _, err = run(
        capsys, "submit", "--dry-run", "--subscription", SUBSCRIPTION, "--location", "westus",
        "--operation-id", "op", "--correlation-id", "r", "--deadline", deadline,
    )  # fmt: skip

    assert code == 64
    assert "deadline must be" in err
