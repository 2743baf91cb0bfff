"""``ops-status ls`` on the local stack: the real worker schedules the follow-ups, ``ls``
browses them through the real SDK and the AMQP emulator, and the queue is left exactly as
it was (the same messages, the same delivery counts, still delivered on time)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from emulators.arm import Step
from emulators.servicebus import MessageState
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE
from ops_status import cli
from ops_status.clock import format_time, parse_time
from ops_status.request import parse_watch_request, submission_key
from ops_status.settings import load_settings
from tests.e2e.conftest import E2E, SUBSCRIPTION, running_worker

# Follow-ups a minute out, so they wait on the polls queue while ls looks at them.
SLOW_POLLING = {"OPS_STATUS_POLL_MIN_DELAY": "60", "OPS_STATUS_POLL_MAX_DELAY": "60"}


def submit_all(e2e: E2E, *bodies: dict[str, Any]) -> None:
    """Submit watches as ``ops-status submit`` does, through one sender (each sender opens
    its own connection: one per watch would cost half a second each; without the
    keep-alive thread, closing it does not wait for that thread's next wake-up)."""
    messages = []
    for body in bodies:
        raw = json.dumps(body).encode()
        request = parse_watch_request(raw, arm_endpoint=e2e.settings.arm_endpoint)
        messages.append(ServiceBusMessage(raw, message_id=submission_key(request)))
    with e2e.client.get_queue_sender(INTAKE_QUEUE, keep_alive=None) as sender:
        sender.send_messages(messages)


def run_ls(e2e: E2E, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["ls", *argv])
    return code, capsys.readouterr().out


def test_ls_lists_exactly_the_scheduled_watches_and_changes_nothing_on_the_queue(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given three watches the worker has read once and rescheduled a minute out
    environment = {**e2e.environment, **SLOW_POLLING}
    e2e = replace(e2e, environment=environment, settings=load_settings(environment))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    arm = e2e.stack.arm
    arm.script("op-a", [Step.running("InProgress", 40), Step.succeeded()])
    arm.script("op-b", [Step.running("Updating"), Step.succeeded()])
    arm.script("op-c", [Step.running("InProgress", 75), Step.succeeded()])
    started = datetime.now(timezone.utc)
    submit_all(
        e2e,
        e2e.parts("op-a", correlationId="run-1", context={"pipeline": "deploy"}),
        e2e.parts("op-b", correlationId="run-1"),
        e2e.parts("op-c", correlationId="run-2"),
    )
    broker = e2e.stack.servicebus

    def polls_queue() -> list[tuple[object, ...]]:
        return [
            (v.sequence_number, v.state, v.delivery_count, v.lock_token, v.body)
            for v in broker.peek_all(POLLS_QUEUE)
        ]

    with running_worker(e2e, concurrency=1):
        assert broker.wait_until(lambda: broker.scheduled_count(POLLS_QUEUE) == 3, timeout=10)
        before = polls_queue()
        views = {json.loads(v.body)["operationId"]: v for v in broker.peek_all(POLLS_QUEUE)}

        # when ls lists them, beside the running worker
        code, out = run_ls(e2e, capsys, "--json")

        # then it lists exactly the three follow-ups, each with its watch's fields
        assert code == 0
        listed = {w["operationId"]: w for w in json.loads(out)}
        assert sorted(listed) == ["op-a", "op-b", "op-c"]
        for operation, watch in listed.items():
            view = views[operation]
            assert view.scheduled_enqueue_time is not None
            assert watch["sequenceNumber"] == view.sequence_number
            assert watch["messageState"] == "scheduled"
            assert watch["deliveryCount"] == 0
            assert watch["dueNow"] is False
            assert watch["nextReadDue"] == format_time(view.scheduled_enqueue_time)
            assert watch["reads"] == 1
            assert watch["subscriptionId"] == SUBSCRIPTION
            assert watch["unreadable"] is None
            assert started.replace(microsecond=0) <= parse_time(watch["firstSeen"])
        assert [
            (listed[o]["correlationId"], listed[o]["lastStatus"], listed[o]["percentComplete"])
            for o in ("op-a", "op-b", "op-c")
        ] == [
            ("run-1", "InProgress", 40.0),
            ("run-1", "Updating", None),
            ("run-2", "InProgress", 75.0),
        ]
        assert listed["op-a"]["context"] == {"pipeline": "deploy"}

        # and the queue is as it was: same messages, same states, no lock, no delivery counted
        assert polls_queue() == before
        assert broker.locked_count(POLLS_QUEUE) == 0
        assert all(row[1] is MessageState.SCHEDULED for row in before)

        # and when the follow-ups fall due, the worker reads each once more and finishes it
        broker.advance_clock(70)  # past any jitter of the 60 s delay
        assert broker.wait_until(lambda: broker.sent_count(EVENTS_TOPIC) == 3, timeout=10)
    events = [json.loads(v.body) for v in broker.peek_all(f"{EVENTS_TOPIC}/subscriptions/all")]
    assert sorted((e["data"]["operationId"], e["data"]["polls"]) for e in events) == [
        ("op-a", 2),
        ("op-b", 2),
        ("op-c", 2),
    ]
    assert broker.peek_all(POLLS_QUEUE) == []
