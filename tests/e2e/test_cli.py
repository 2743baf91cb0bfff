"""The command line against the local stack: real processes, real SDKs, real protocols.

Each test runs ``python -m ops_status ...`` as a child process with the environment a
pipeline would have (the stack's settings; no OPS_STATUS_CREDENTIAL unless said, so the
CLI's DefaultAzureCredential finds the stack's managed-identity endpoint), and checks exit
code, stdout and what ended up on the queue or topic.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusAuthenticationError

from emulators.arm import Step
from emulators.servicebus import MessageState
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE
from ops_status.decision import Finish, decide
from ops_status.events import build_terminal_event
from ops_status.observation import StatusRead
from ops_status.request import parse_watch_request
from ops_status.servicebus import ServiceBusOutputClient
from tests.contracts import assert_valid_event, assert_valid_watch_request
from tests.e2e.conftest import E2E, SUBSCRIPTION

ROOT = Path(__file__).parents[2]
ALL = f"{EVENTS_TOPIC}/subscriptions/all"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def cli_environment(e2e: E2E, **changes: str | None) -> dict[str, str]:
    """What a pipeline step's process sees: the stack's settings, the CLI's own defaults."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection"))
    }
    environment.update(e2e.environment)
    del environment["OPS_STATUS_CREDENTIAL"]
    environment["PYTHONPATH"] = str(ROOT)
    # submit's record of what it sent stays out of the user's cache (a test opts in).
    environment["OPS_STATUS_SUBMIT_HISTORY"] = ""
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def ops_status(e2e: E2E, *argv: str, timeout: float = 60, **environment: str | None) -> Result:
    process = subprocess.run(
        [sys.executable, "-m", "ops_status", *argv],
        env=cli_environment(e2e, **environment),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(process.returncode, process.stdout, process.stderr)


def publish(e2e: E2E, operation_id: str, status: str, *, correlation_id: str) -> None:
    """A terminal event as the function publishes it (same builder, same sender)."""
    request = parse_watch_request(
        json.dumps(e2e.parts(operation_id, correlationId=correlation_id)),
        arm_endpoint=e2e.settings.arm_endpoint,
    )
    now = datetime.now(timezone.utc)
    error = {"code": "QuotaExceeded", "message": "no"} if status == "Failed" else None
    action = decide(request, StatusRead(status, error=error), now, e2e.settings.policy)
    assert isinstance(action, Finish)
    event = build_terminal_event(action, arm_endpoint=e2e.settings.arm_endpoint, now=now)
    outputs = ServiceBusOutputClient(e2e.client, polls_queue=POLLS_QUEUE, topic=EVENTS_TOPIC)
    outputs.send_event(event)


@pytest.fixture
def published(e2e: E2E) -> E2E:
    """Three pipelines' events already on the topic."""
    publish(e2e, "op-a", "Succeeded", correlation_id="run-a")
    publish(e2e, "op-b", "Failed", correlation_id="run-b")
    publish(e2e, "op-c", "Canceled", correlation_id="run-c")
    return e2e


# -- submit ---------------------------------------------------------------------------


def test_submit_puts_the_validated_watch_on_the_queue_once_even_when_retried(
    e2e: E2E, tmp_path: Path
) -> None:
    url = e2e.stack.arm.status_url("op-submit")
    argv = ["submit", "--status-url", url, "--correlation-id", "run-1", "--context", "a=1"]
    history = str(tmp_path / "submitted.json")

    first = ops_status(e2e, *argv, OPS_STATUS_SUBMIT_HISTORY=history)
    retried = ops_status(e2e, *argv, OPS_STATUS_SUBMIT_HISTORY=history)

    assert first.code == retried.code == 0
    assert first.out == retried.out
    assert first.err == ""
    # The retry is told its copy is dropped, where the first one's event is, and what to do.
    message_id = first.out.strip()
    assert retried.err.startswith(
        f"ops-status: warning: MessageId {message_id} was sent to {INTAKE_QUEUE} from this "
        "machine 0 min ago: within the queue's duplicate-detection window"
    )
    assert f"listen --submission-id {message_id}" in retried.err
    assert "pass another --correlation-id" in retried.err
    [message] = e2e.stack.servicebus.peek_all(INTAKE_QUEUE)
    assert message.message_id == first.out.strip()
    assert re.fullmatch("[0-9a-f]{32}", message.message_id)
    assert message.correlation_id == "run-1"
    assert message.content_type == "application/json"
    body = assert_valid_watch_request(json.loads(message.body))
    assert body == {"statusUrl": url, "correlationId": "run-1", "context": {"a": "1"}}
    assert e2e.stack.servicebus.duplicates_dropped(INTAKE_QUEUE) == 1

    # A new correlation id is a new watch: no warning, and the queue keeps it.
    rerun = ops_status(
        e2e, "submit", "--status-url", url, "--correlation-id", "run-1-attempt-2",
        OPS_STATUS_SUBMIT_HISTORY=history,
    )  # fmt: skip
    assert (rerun.code, rerun.err) == (0, "")
    assert len(e2e.stack.servicebus.peek_all(INTAKE_QUEUE)) == 2


def test_submit_with_a_connection_string_flag_and_no_identity(e2e: E2E) -> None:
    result = ops_status(
        e2e,
        "submit",
        "--connection-string",
        e2e.stack.servicebus.connection_string,
        "--subscription", SUBSCRIPTION, "--location", "West US", "--operation-id", "op-cs",
        "--correlation-id", "run-cs",
        IDENTITY_ENDPOINT=None,
        IDENTITY_HEADER=None,
    )  # fmt: skip

    assert result.code == 0, result.err
    [message] = e2e.stack.servicebus.peek_all(INTAKE_QUEUE)
    assert json.loads(message.body)["location"] == "westus"


def test_a_pipeline_holding_only_the_intake_send_rule_submits_but_cannot_reach_the_polls_queue(
    e2e: E2E,
) -> None:
    # Given what a pipeline is given: a Send rule on the intake queue, nothing else
    pipeline = e2e.stack.pipeline_connection_string

    # When it submits through the CLI, then tries to forge a follow-up on the polls queue
    result = ops_status(
        e2e, "submit", "--connection-string", pipeline, "--subscription", SUBSCRIPTION,
        "--location", "westus", "--operation-id", "op-pipe", "--correlation-id", "run-p",
        IDENTITY_ENDPOINT=None, IDENTITY_HEADER=None,
    )  # fmt: skip
    key_name, key = (dict(p.split("=", 1) for p in pipeline.split(";"))[k] for k in (
        "SharedAccessKeyName", "SharedAccessKey"))  # fmt: skip
    forger = ServiceBusClient(
        e2e.stack.servicebus.fully_qualified_namespace,
        AzureNamedKeyCredential(key_name, key),
        use_tls=False,
        retry_total=0,
    )
    forged = ServiceBusMessage(b'{"watchId": "0" , "pollState": {}}', message_id="x.1")
    with forger:
        with pytest.raises(ServiceBusAuthenticationError):
            forger.get_queue_sender(POLLS_QUEUE).send_messages(forged)
        with pytest.raises(ServiceBusAuthenticationError):
            forger.get_topic_sender(EVENTS_TOPIC).send_messages(
                ServiceBusMessage(b"{}", message_id="x.final")
            )

    # Then the submission is on the intake queue and nothing reached the polls queue or topic
    assert result.code == 0, result.err
    assert len(e2e.stack.servicebus.peek_all(INTAKE_QUEUE)) == 1
    assert e2e.stack.servicebus.peek_all(POLLS_QUEUE) == []
    assert e2e.stack.servicebus.sent_count(EVENTS_TOPIC) == 0
    assert e2e.stack.servicebus.authorization_failures


def test_an_invalid_submit_fails_the_step_and_sends_nothing(e2e: E2E) -> None:
    result = ops_status(
        e2e, "submit", "--status-url", "https://management.azure.com/subscriptions/x/y",
        "--correlation-id", "run-1",
    )  # fmt: skip

    assert result.code == 64
    assert result.err.startswith("ops-status: error: invalid watch request: --status-url")
    assert e2e.stack.servicebus.peek_all(INTAKE_QUEUE) == []


def test_a_send_that_fails_is_one_line_and_exit_5(e2e: E2E) -> None:
    result = ops_status(
        e2e, "submit", "--status-url", e2e.stack.arm.status_url("op-x"),
        "--correlation-id", "r", "--queue", "no-such-queue",
    )  # fmt: skip

    assert result.code == 5
    assert result.err.count("\n") == 1
    assert "no-such-queue" in result.err
    assert "Traceback" not in result.err


# -- check ----------------------------------------------------------------------------


def test_check_reports_running_succeeded_failed_and_unreadable(e2e: E2E) -> None:
    arm = e2e.stack.arm
    arm.script("op-run", [Step.running(status="Updating", percent_complete=40)])
    arm.script("op-ok", [Step.succeeded()])
    arm.script("op-bad", [Step.failed()])

    running = ops_status(e2e, "check", "--status-url", arm.status_url("op-run"), "--json")
    done = ops_status(e2e, "check", "--status-url", arm.status_url("op-ok"))
    failed = ops_status(e2e, "check", "--status-url", arm.status_url("op-bad"))
    missing = ops_status(e2e, "check", "--status-url", arm.status_url("op-none"), "--json")

    assert running.code == 3
    document = json.loads(running.out)
    assert (document["outcome"], document["status"], document["percentComplete"]) == (
        "Running",
        "Updating",
        40.0,
    )
    assert document["statusUrl"] == arm.status_url("op-run")
    assert (done.code, done.out) == (0, "Succeeded\n")
    assert failed.code == 1
    assert failed.out.startswith("Failed\nerror: {")
    assert missing.code == 4
    assert json.loads(missing.out)["readFailure"] == "NotFound"
    # The same token path as the function: the CLI's DefaultAzureCredential found the
    # stack's managed-identity endpoint and ARM accepted its token.
    assert all(r.response_status != 401 for r in arm.requests)


# -- watch ----------------------------------------------------------------------------


def test_watch_polls_to_the_end_and_prints_the_event_and_arms_error(e2e: E2E) -> None:
    e2e.stack.arm.script(
        "op-w",
        [Step.running(percent_complete=30), Step.running(percent_complete=70), Step.failed()],
    )

    result = ops_status(
        e2e, "watch", "--subscription", SUBSCRIPTION, "--location", "westus",
        "--operation-id", "op-w", "--correlation-id", "run-w",
    )  # fmt: skip

    assert result.code == 1
    first, payload = result.out.split("\n", 1)
    assert " Failed operation=op-w correlationId=run-w reason=OperationFailed polls=3" in first
    assert json.loads(payload.removeprefix("error: "))["code"] == "ResourceOperationFailure"
    progress = result.err.splitlines()
    assert "\r" not in result.err  # not a terminal: plain lines
    assert [line.split("  ")[1] for line in progress] == ["polls=1", "polls=2", "polls=3"]
    assert "Running 30%" in progress[0]
    assert "next check in" in progress[0]
    assert len(e2e.stack.arm.requests_for("op-w")) == 3


def test_watch_times_out_with_exit_2_and_a_valid_timed_out_event(e2e: E2E) -> None:
    e2e.stack.arm.script("op-slow", [Step.running()])

    result = ops_status(
        e2e, "watch", "--status-url", e2e.stack.arm.status_url("op-slow"), "--timeout", "2",
        "--json",
    )  # fmt: skip

    assert result.code == 2
    event = assert_valid_event(json.loads(result.out))
    assert event["type"] == "OpsStatus.Operation.TimedOut"
    assert event["data"]["armStatus"] == "Running"


# -- listen ---------------------------------------------------------------------------


def test_a_gate_finds_its_event_among_others_and_leaves_every_event_where_it_was(
    published: E2E,
) -> None:
    before = [
        (m.sequence_number, m.delivery_count) for m in published.stack.servicebus.peek_all(ALL)
    ]

    failed = ops_status(
        published, "listen", "--subscription-name", "all", "--correlation-id", "run-b",
        "--timeout", "20",
    )  # fmt: skip
    again = ops_status(
        published, "listen", "--subscription-name", "all", "--operation-id", "OP-A", "--json",
        "--timeout", "20",
    )  # fmt: skip

    assert failed.code == 1
    assert failed.out.splitlines()[0].endswith(
        "Failed operation=op-b correlationId=run-b reason=OperationFailed polls=1"
    )
    assert '"QuotaExceeded"' in failed.out
    assert "op-a" not in failed.out  # a gate shows only its own event
    assert again.code == 0
    assert assert_valid_event(json.loads(again.out))["data"]["operationId"] == "op-a"
    after = published.stack.servicebus.peek_all(ALL)
    # Browsing took nothing, locked nothing and counted no delivery.
    assert [(m.sequence_number, m.delivery_count) for m in after] == before
    assert all(m.state is MessageState.ACTIVE and not m.is_locked for m in after)


def test_a_gate_whose_event_never_comes_exits_2(published: E2E) -> None:
    result = ops_status(
        published, "listen", "--subscription-name", "all", "--correlation-id", "run-z",
        "--timeout", "2",
    )  # fmt: skip

    assert result.code == 2
    assert result.out == ""
    assert "no event for correlationId=run-z within 2s (3 other events seen)" in result.err


def test_listen_without_a_filter_prints_json_lines_and_complete_consumes(published: E2E) -> None:
    browsed = ops_status(
        published, "listen", "--subscription-name", "all", "--json", "--max-events", "3"
    )
    consumed = ops_status(
        published, "listen", "--subscription-name", "all", "--complete", "--max-events", "3"
    )

    assert browsed.code == consumed.code == 0
    events = [assert_valid_event(json.loads(line)) for line in browsed.out.splitlines()]
    assert [e["data"]["operationId"] for e in events] == ["op-a", "op-b", "op-c"]
    assert [line.split()[1] for line in consumed.out.splitlines() if line[:1].isdigit()] == [
        "Succeeded",
        "Failed",
        "Canceled",
    ]
    assert published.stack.servicebus.active_count(ALL) == 0


def test_listen_on_a_missing_subscription_is_one_line_and_exit_5(e2e: E2E) -> None:
    # --complete: a receive reports the missing entity at once, while a peek is retried by
    # the SDK for about 15 s before it fails the same way.
    result = ops_status(
        e2e, "listen", "--subscription-name", "nope", "--complete", "--timeout", "5"
    )

    assert result.code == 5
    assert result.err.splitlines()[-1].startswith("ops-status: error: receiving from ")
    assert "could not be found" in result.err
    assert "Traceback" not in result.err
