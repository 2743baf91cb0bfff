"""End to end through the real SDKs: queue → scheduled polls → one event on a subscription."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from emulators.arm import Step
from emulators.servicebus import MessageState
from emulators.stack import INTAKE_QUEUE, POLLS_QUEUE, LocalStack
from tests.conftest import sample
from tests.contracts import assert_valid_event
from tests.e2e.conftest import E2E, make_e2e, running_worker

ROOT = Path(__file__).parents[2]


def scheduled_per_operation(e2e: E2E) -> Counter[str]:
    """How many scheduled (pending) polls each operation has on the queue right now."""
    counts: Counter[str] = Counter()
    for message in e2e.stack.servicebus.peek_all(POLLS_QUEUE):
        if message.state is MessageState.SCHEDULED:
            counts[json.loads(message.body).get("operationId", "?")] += 1
    return counts


class ForkWatch:
    """Samples the queue while a test runs: the most scheduled polls any operation had."""

    def __init__(self, e2e: E2E) -> None:
        self._e2e = e2e
        self._stop = threading.Event()
        self.most = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ForkWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            counts = scheduled_per_operation(self._e2e)
            self.most = max([self.most, *counts.values()])


def test_watch_goes_from_queue_through_polls_to_one_event_with_payload_intact(e2e: E2E) -> None:
    arm_error = sample("arm-status-failed-nested.json")["error"]["error"]
    e2e.stack.arm.script("op-fail", [Step.running(repeat=3), Step.failed(error=arm_error)])
    submitted = e2e.submit(e2e.parts("op-fail", correlationId="run-42", context={"stage": "prod"}))

    with ForkWatch(e2e) as forks, running_worker(e2e):
        events = e2e.receive_events("failed", expect=1)

    [(event, message)] = events
    assert_valid_event(event)
    assert event["type"] == "OpsStatus.Operation.Failed"
    assert event["data"]["error"] == arm_error
    assert event["data"]["polls"] == 4
    assert event["data"]["context"] == {"stage": "prod"}
    assert message.content_type == "application/cloudevents+json; charset=utf-8"
    assert message.message_id == event["id"] == event["data"]["watchId"] + ".final"
    assert event["data"]["submissionId"] == submitted
    assert message.correlation_id == "run-42"
    properties = {
        k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
        for k, v in message.application_properties.items()
    }
    assert properties["eventType"] == "OpsStatus.Operation.Failed"
    assert properties["status"] == "Failed"
    assert properties["operationId"] == "op-fail"
    assert properties["correlationId"] == "run-42"
    assert len(e2e.stack.arm.requests_for("op-fail")) == 4
    assert forks.most <= 1
    for queue in (INTAKE_QUEUE, POLLS_QUEUE):
        assert e2e.stack.servicebus.active_count(queue) == 0
        assert e2e.stack.servicebus.dead_letter_count(queue) == 0


def test_subscription_filter_keeps_succeeded_events_out_of_the_failed_subscription(
    e2e: E2E,
) -> None:
    e2e.stack.arm.script("op-ok", [Step.running(), Step.succeeded()])
    e2e.submit(e2e.parts("op-ok"))

    with running_worker(e2e):
        everything = e2e.receive_events("all", expect=1)
        failed_only = e2e.receive_events("failed", expect=0, timeout=1.0)

    assert [event["type"] for event, _ in everything] == ["OpsStatus.Operation.Succeeded"]
    assert failed_only == []


def test_invalid_request_becomes_one_rejection_event_and_is_completed(e2e: E2E) -> None:
    body = {"statusUrl": "https://evil.example/subscriptions/x", "correlationId": "run-7"}
    e2e.submit(body, message_id="bad-1")

    with running_worker(e2e):
        [(event, message)] = e2e.receive_events("all", expect=1)

    assert_valid_event(event)
    assert event["type"] == "OpsStatus.Watch.Rejected"
    assert event["data"]["correlationId"] == "run-7"
    assert event["data"]["receivedMessageId"] == "bad-1"
    assert json.loads(event["data"]["rawBody"]) == body
    assert message.correlation_id == "run-7"
    for queue in (INTAKE_QUEUE, POLLS_QUEUE):
        assert e2e.stack.servicebus.active_count(queue) == 0
        assert e2e.stack.servicebus.dead_letter_count(queue) == 0
    assert e2e.stack.arm.requests == []


def test_connection_string_path_works_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalStack(lock_duration=3.0) as stack:
        e2e = make_e2e(stack, monkeypatch, identity_based=False)
        stack.arm.script("op-cs", [Step.running(), Step.succeeded()])
        e2e.submit(e2e.parts("op-cs"))

        with running_worker(e2e):
            [(event, _)] = e2e.receive_events("all", expect=1)
        e2e.client.close()

    assert event["type"] == "OpsStatus.Operation.Succeeded"
    assert stack.servicebus.cbs_tokens  # the SAS path authenticates through CBS too


def test_identity_based_service_bus_sends_the_managed_identity_token(e2e: E2E) -> None:
    e2e.stack.arm.script("op-id", [Step.succeeded()])
    e2e.submit(e2e.parts("op-id"))

    with running_worker(e2e):
        e2e.receive_events("all", expect=1)

    token = e2e.stack.identity.token_for("https://servicebus.azure.net")
    assert any(sent == token for _, sent in e2e.stack.servicebus.cbs_tokens)
    servicebus_token_requests = [
        r for r in e2e.stack.identity.requests if "servicebus.azure.net" in (r.resource or "")
    ]
    assert len(servicebus_token_requests) == 1


def run_crashing_worker(e2e: E2E, kind: str) -> int:
    process = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crashing_worker", kind],
        env={**os.environ, **e2e.environment},
        cwd=ROOT,
        timeout=60,
        capture_output=True,
        check=False,
    )
    return process.returncode


@pytest.mark.slow
def test_worker_killed_after_scheduling_the_next_poll_does_not_fork_a_chain(e2e: E2E) -> None:
    # Long enough that the killed step's message is redelivered while the operation runs.
    e2e.stack.arm.script("op-kill", [Step.running(repeat=8), Step.succeeded()])
    e2e.submit(e2e.parts("op-kill"))

    with ForkWatch(e2e) as forks:
        assert run_crashing_worker(e2e, "schedule") == 137
        # The first message is still on the queue (locked, never completed) and its
        # next poll is already scheduled.
        assert scheduled_per_operation(e2e)["op-kill"] == 1
        with running_worker(e2e):
            events = e2e.receive_events("all", expect=1)

    assert [event["type"] for event, _ in events] == ["OpsStatus.Operation.Succeeded"]
    assert e2e.stack.servicebus.duplicates_dropped(POLLS_QUEUE) >= 1
    assert forks.most == 1
    assert e2e.stack.servicebus.active_count(INTAKE_QUEUE) == 0
    assert e2e.stack.servicebus.active_count(POLLS_QUEUE) == 0


def test_redelivered_terminal_step_does_not_publish_a_second_event(e2e: E2E) -> None:
    e2e.stack.arm.script("op-final", [Step.succeeded()])
    e2e.submit(e2e.parts("op-final"))

    assert run_crashing_worker(e2e, "event") == 137
    with running_worker(e2e):
        events = e2e.receive_events("all", expect=1, timeout=20)
        # The redelivered step read ARM again before its event was dropped.
        assert e2e.stack.servicebus.wait_until(
            lambda: len(e2e.stack.arm.requests_for("op-final")) >= 2, timeout=15
        )

    assert len(events) == 1
    assert e2e.stack.servicebus.duplicates_dropped("ops-status-events") >= 1


@pytest.mark.slow
def test_when_sends_keep_failing_the_watch_ends_in_the_dead_letter_queue_intact(e2e: E2E) -> None:
    e2e.stack.arm.script("op-stuck", [Step.running()])
    body = e2e.parts("op-stuck", correlationId="run-dlq")
    e2e.submit(body)
    # From now on the polls queue refuses every send: the next poll can never be scheduled.
    e2e.stack.servicebus.refuse_sends(POLLS_QUEUE, for_seconds=600)

    with running_worker(e2e):
        assert e2e.stack.servicebus.wait_until(
            lambda: e2e.stack.servicebus.dead_letter_count(INTAKE_QUEUE) == 1, timeout=90
        )

    [dead] = e2e.stack.servicebus.dead_letters(INTAKE_QUEUE)
    assert json.loads(dead.body) == body
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.delivery_count >= 3
    assert e2e.stack.servicebus.active_count(INTAKE_QUEUE) == 0


@pytest.mark.slow
def test_sends_refused_for_a_while_lose_nothing_and_deliveries_are_spaced_out(
    e2e: E2E, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a polls queue that refuses the next 6 sends: more than the SDK's own retries
    # of one send (4 attempts), so the first delivery of the intake message fails
    e2e.stack.arm.script("op-blip", [Step.running(), Step.succeeded()])
    e2e.submit(e2e.parts("op-blip"))
    e2e.stack.servicebus.refuse_sends(POLLS_QUEUE, count=6)

    # When the worker runs through it
    with caplog.at_level(logging.WARNING, logger="ops_status.handler"), running_worker(e2e):
        [(event, _)] = e2e.receive_events("all", expect=1, timeout=40)

    # Then the watch ends with its event and nothing is dead-lettered; the failed delivery
    # waited (1 s x delivery 1 here) before it was given back, and was then redelivered
    assert event["type"] == "OpsStatus.Operation.Succeeded"
    for queue in (INTAKE_QUEUE, POLLS_QUEUE):
        assert e2e.stack.servicebus.dead_letter_count(queue) == 0
    waits = [
        r.getMessage() for r in caplog.records if "watch.send_failed_waiting" in r.getMessage()
    ]
    assert len(waits) == 1
    assert "wait_s=1" in waits[0]
    assert "delivery=1" in waits[0]
    reads = [r.received_at for r in e2e.stack.arm.requests_for("op-blip")]
    # The intake step read, failed to send, waited, was redelivered, read again: Succeeded.
    assert len(reads) == 2
    assert reads[1] - reads[0] >= 1.0


@pytest.mark.slow
def test_identity_outage_longer_than_a_redelivery_loop_dead_letters_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an identity endpoint down for 8 s from the start: raising on a token failure
    # spent MaxDeliveryCount 10 in 4.9 s (3 here), so every watch was dead-lettered.
    # Service Bus authenticates by connection string, so only the ARM token is missing.
    with LocalStack(lock_duration=3.0, max_delivery_count=3) as stack:
        e2e = make_e2e(stack, monkeypatch, identity_based=False)
        outcomes = {"op-id-ok": Step.succeeded(), "op-id-fail": Step.failed()}
        for name, step in outcomes.items():
            stack.arm.script(name, [Step.running(), step])
            e2e.submit(e2e.parts(name))
        stack.identity.fail_for(8.0, status=503)

        # When the worker runs through the outage
        with running_worker(e2e):
            events = e2e.receive_events("all", expect=2, timeout=60)
        e2e.client.close()

        # Then every watch ends with its own right event and nothing is dead-lettered
        by_operation = {event["data"]["operationId"]: event["type"] for event, _ in events}
        assert by_operation == {
            "op-id-ok": "OpsStatus.Operation.Succeeded",
            "op-id-fail": "OpsStatus.Operation.Failed",
        }
        for queue in (INTAKE_QUEUE, POLLS_QUEUE):
            assert stack.servicebus.dead_letter_count(queue) == 0
        failed_token_requests = [r for r in stack.identity.requests if r.response_status == 503]
        assert failed_token_requests  # the outage was really met
