"""Input classes through the whole handler: ``HandlerHarness``, ``Case``, ``ClassTally``.

Every case runs ``handle_watch_message`` with real settings, a fixed ARM answer and an
in-memory output recorder, and counts as rejected, accepted or escaped; accepted ones
are checked against the schemas, the endpoint and the poll-message round trip.
"""

from __future__ import annotations

import json
import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ops_status.errors import InvalidWatchRequestError
from ops_status.observation import (
    Observation,
    ReadFailure,
    ReadFailureKind,
    StatusRead,
)
from ops_status.request import WatchRequest, parse_poll_message

from .properties import (
    NOW,
    ROOT,
    SUB,
    assert_on_endpoint,
)

CLASSES = ("depth", "timestamps", "whitespace", "unicode-digits", "amqp-bodies")


@dataclass
class ClassTally:
    """Counts for one input class."""

    generated: int = 0
    rejected: int = 0
    accepted: int = 0
    escaped: int = 0
    off_contract: int = 0
    """Accepted, though the published JSON Schema refuses the input."""
    violations: int = 0
    """A property of the outcome failed (not an exception)."""
    escapes: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    """signature -> (count, first input, first traceback)."""
    violation_examples: dict[str, tuple[int, str]] = field(default_factory=dict)
    off_contract_examples: dict[str, tuple[int, str]] = field(default_factory=dict)
    accepted_by_label: Counter[str] = field(default_factory=Counter)
    generated_by_label: Counter[str] = field(default_factory=Counter)

    def note(self, table: dict[str, tuple[int, str]], key: str, example: str) -> None:
        n, first = table.get(key, (0, example))
        table[key] = (n + 1, first)


@dataclass(frozen=True)
class Case:
    """One generated input: which queue it arrives on, its body, what ARM will answer."""

    label: str
    """What was varied (a field name, a shape): the breakdown in the report."""
    queue: str  # "intake" | "polls"
    body: bytes
    answer: Observation = field(default_factory=lambda: StatusRead("Running"))
    expect: str | None = None
    """"accepted" or "rejected" when the outcome is known in advance (else None)."""


def fixed_answers() -> list[Observation]:
    return [
        StatusRead("Running"),
        StatusRead("Succeeded"),
        StatusRead("Running", retry_after=600),
        ReadFailure(ReadFailureKind.TRANSIENT, "fuzz"),
        ReadFailure(ReadFailureKind.TOKEN_UNAVAILABLE, "fuzz"),
        ReadFailure(ReadFailureKind.NOT_FOUND, "fuzz", http_status=404),
        ReadFailure(ReadFailureKind.UNAUTHORIZED, "fuzz", http_status=403),
        ReadFailure(ReadFailureKind.THROTTLED, "fuzz", http_status=429, retry_after=30),
    ]


class _Recorder:
    def __init__(self) -> None:
        self.polls: list[tuple[Any, datetime]] = []
        self.events: list[Any] = []

    def schedule_poll(self, message: Any, enqueue_at: datetime) -> None:
        self.polls.append((message, enqueue_at))

    def send_event(self, message: Any) -> None:
        self.events.append(message)


class _Reader:
    def __init__(self, answer: Observation) -> None:
        self.answer = answer
        self.requests: list[WatchRequest] = []

    def get_operation_status(self, request: WatchRequest) -> Observation:
        self.requests.append(request)
        return self.answer


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _date_time_fields(document: Any, queue: str) -> list[tuple[str, Any]]:
    if not isinstance(document, dict):
        return []
    found = [("deadline", document.get("deadline"))]
    state = document.get("pollState") if queue == "polls" else None
    if isinstance(state, dict):
        found += [("pollState.firstSeen", state.get("firstSeen"))]
        found += [("pollState.deadline", state.get("deadline"))]
        failures = state.get("failures")
        if isinstance(failures, dict):
            for kind, streak in failures.items():
                if isinstance(streak, dict):
                    found.append((f"pollState.failures.{kind}.since", streak.get("since")))
    return [(name, value) for name, value in found if value is not None]


class HandlerHarness:
    """``handle_watch_message`` with real settings, a fixed ARM answer and a recorder."""

    def __init__(self) -> None:
        from jsonschema import Draft202012Validator

        from ops_status.settings import load_settings

        self.settings = load_settings(
            {
                "OPS_STATUS_INTAKE_QUEUE": "ops-status-intake",
                "OPS_STATUS_POLLS_QUEUE": "ops-status-polls",
                "OPS_STATUS_EVENTS_TOPIC": "ops-status-events",
                "ServiceBusConnection": "Endpoint=sb://localhost;SharedAccessKeyName=fuzz;"
                "SharedAccessKey=fuzz;UseDevelopmentEmulator=true",
            }
        )
        schemas = ROOT / "schemas"
        self.schemas = {
            name: Draft202012Validator(json.loads((schemas / f"{name}.schema.json").read_text()))
            for name in ("watch-request", "poll-message", "event")
        }
        self._sequence = 0
        self.poll_template = self._poll_template()

    def _poll_template(self) -> dict[str, Any]:
        """A real poll message, as the product writes it after a first read."""
        body = json.dumps(
            {
                "subscriptionId": SUB,
                "location": "westus",
                "operationId": "op-1",
                "correlationId": "run-1",
                "timeout": 3600,
            }
        ).encode()
        outcome, recorder, _ = self.handle(Case("template", "intake", body))
        assert outcome == "accepted", outcome
        assert recorder.polls
        template: dict[str, Any] = json.loads(recorder.polls[0][0].body)
        template["pollState"]["failures"] = {
            "Transient": {"count": 1, "since": "2026-11-28T11:59:00.000Z"}
        }
        template["pollState"]["consecutiveFailures"] = 1
        return template

    def handle(self, case: Case) -> tuple[str, _Recorder, _Reader]:
        """Run one case; returns ("accepted" | "rejected", recorder, reader). Raises what
        the handler raises."""
        from ops_status.bootstrap import build_dependencies
        from ops_status.handler import handle_watch_message
        from ops_status.inbound import InboundMessage, Queue

        recorder, reader = _Recorder(), _Reader(case.answer)
        dependencies = build_dependencies(
            self.settings,
            status_reader=reader,
            outputs=recorder,
            clock=lambda: NOW,
            sleep=lambda _seconds: None,
        )
        self._sequence += 1
        message = InboundMessage(
            queue=Queue.INTAKE if case.queue == "intake" else Queue.POLLS,
            body=case.body,
            message_id=f"fuzz-{self._sequence}",
            sequence_number=self._sequence,
            enqueued_time=NOW - timedelta(seconds=2),
            delivery_count=1,
        )
        result = handle_watch_message(message, dependencies)
        return ("rejected" if result.action == "rejected" else "accepted"), recorder, reader

    def run(self, case: Case, tally: ClassTally) -> None:
        tally.generated += 1
        tally.generated_by_label[case.label] += 1
        shown = _show(case)
        try:
            outcome, recorder, reader = self.handle(case)
            problems = self._check(case, outcome, recorder, reader)
        except Exception as exc:  # noqa: BLE001 - an escape is what this counts
            tally.escaped += 1
            signature = _signature(exc)
            n, first, trace = tally.escapes.get(signature, (0, shown, traceback.format_exc()))
            tally.escapes[signature] = (n + 1, first, trace)
            return
        if case.expect is not None and outcome != case.expect:
            problems.append(f"{case.label}: {outcome}, expected {case.expect}")
        if outcome == "rejected":
            tally.rejected += 1
        else:
            tally.accepted += 1
            tally.accepted_by_label[case.label] += 1
            for reason in self._off_contract(case):
                tally.off_contract += 1
                tally.note(tally.off_contract_examples, f"{case.label}: {reason}", shown)
                break
        for problem in problems:
            tally.violations += 1
            tally.note(tally.violation_examples, problem, shown)

    def _check(self, case: Case, outcome: str, recorder: _Recorder, reader: _Reader) -> list[str]:
        problems = []
        outputs = len(recorder.polls) + len(recorder.events)
        if outputs != 1:
            problems.append(f"{outputs} follow-ups instead of one")
        for event in recorder.events:
            errors = list(self.schemas["event"].iter_errors(json.loads(event.body)))
            if errors:
                problems.append(f"event not schema-valid: {errors[0].message[:80]}")
        if outcome == "rejected":
            if reader.requests:
                problems.append("a rejected message read ARM")
            if recorder.events and json.loads(recorder.events[0].body)["type"] != (
                "OpsStatus.Watch.Rejected"
            ):
                problems.append("a rejection that is not a Rejected event")
            return problems
        for request in reader.requests:
            try:
                assert_on_endpoint(request)
            except AssertionError as exc:
                problems.append(f"read left the endpoint: {exc}")
        for poll, _ in recorder.polls:
            document = json.loads(poll.body)
            errors = list(self.schemas["poll-message"].iter_errors(document))
            if errors:
                problems.append(f"poll message not schema-valid: {errors[0].message[:80]}")
            try:
                parse_poll_message(
                    poll.body, arm_endpoint=self.settings.arm_endpoint, policy=self.settings.policy
                )
            except InvalidWatchRequestError as exc:
                problems.append(f"own poll message refused on the next step: {exc.errors[0]}")
        return problems

    def _off_contract(self, case: Case) -> list[str]:
        try:
            document = json.loads(case.body)
        except ValueError:
            return ["not JSON"]
        schema = self.schemas["watch-request" if case.queue == "intake" else "poll-message"]
        reasons = [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.validator}"
            for e in schema.iter_errors(document)
        ]
        for name, value in _date_time_fields(document, case.queue):
            # The schemas say format date-time (RFC 3339); jsonschema checks formats only
            # with optional packages, so check it here, strictly (ASCII, fullmatch).
            if not isinstance(value, str) or not _RFC3339.fullmatch(value):
                reasons.append(f"{name}: not RFC 3339")
        return reasons


def _show(case: Case) -> str:
    text = case.body.decode("utf-8", "backslashreplace")
    if len(text) > 240:
        text = text[:200] + f"... ({len(case.body)} bytes)"
    return f"[{case.queue}, ARM answers {_answer_name(case.answer)}] {text}"


def _answer_name(answer: Observation) -> str:
    if isinstance(answer, StatusRead):
        return answer.status + (
            f" retry-after {answer.retry_after:g}" if answer.retry_after else ""
        )
    return answer.kind.value


def _signature(exc: BaseException) -> str:
    """The exception type and the innermost ops_status frame it passed through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "ops_status" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}: {str(exc)[:80]}"
