"""Fuzzing the boundaries that face untrusted input, by input class and time-bounded.

    .venv/bin/python -m benchmarks.fuzz --seconds 60               # classes, then 60 s engine
    .venv/bin/python -m benchmarks.fuzz --seconds 0 --classes depth,timestamps

Two parts.

**Input classes** (``--classes``, default all): each class is generated deterministically
(a sweep) plus ``--examples`` hypothesis examples, and run through the *whole handler*
(``handle_watch_message`` with a fixed ARM answer and an in-memory output recorder), on
the intake queue and, where the class applies, on the polls queue. Every input counts as
*rejected* (one schema-valid ``Rejected`` event, no ARM read), *accepted* (one follow-up)
or *escaped* (any exception: that is a bug, a message the host would redeliver until it
is dead-lettered). For accepted inputs it also checks that the read stayed on the ARM
endpoint, that the follow-up poll message is schema-valid and is accepted again by
``parse_poll_message`` (round trip), that events are schema-valid, and whether the
published schema would have accepted the input ("accepted off-contract").

- ``depth``: nesting depth swept 1-2,000, in ``context`` (objects, arrays), an unknown
  field, ``statusUrl``, ``pollState`` and the document root;
- ``timestamps``: the representable extremes with offsets (``0001-01-01T00:00:00+14:00``,
  ``9999-12-31T23:59:59-14:00`` and their neighbours) in ``deadline`` and in the poll
  state of poll messages (``firstSeen``, ``deadline``, ``failures.*.since``), against
  several ARM answers;
- ``whitespace``: trailing (and leading) whitespace and newlines, ASCII and Unicode, on
  every string field of a submission and of a poll message;
- ``unicode-digits``: Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, Thai,
  NKo, fullwidth and mathematical digits (and superscripts) in ``apiVersion`` (parts and
  ``statusUrl``), ``timeout``, timestamps, GUIDs, ids and locations;
- ``amqp-bodies``: non-data AMQP bodies (amqp-value string, binary, numbers, map;
  amqp-sequence) sent with the real SDK to the Service Bus emulator and handled by the
  real worker (``python -m ops_status worker``): each must end as one ``Rejected`` event,
  its message completed, nothing dead-lettered.

**Engine** (``--seconds``): ``parse_watch_request`` (queue message bodies, from pipelines)
and ``classify_response`` (ARM's answers), time-bounded, with ``hypothesis`` (structured
generation from URL-confusion pieces and JSON documents) or ``atheris`` (coverage-guided
byte mutation, when installed: ``pip install atheris``). Properties:
``parse_watch_request`` raises nothing but ``InvalidWatchRequestError``; an accepted
request's ``endpoint + status_path`` stays on the configured endpoint (same scheme and
netloc, path under ``/subscriptions/``, no dot segments, no backslash/CR/LF/NUL/'#');
``classify_response`` never raises and returns a ``StatusRead`` or ``ReadFailure``.

Exit status 1 when anything escaped or a property was violated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ops_status.errors import InvalidWatchRequestError
from ops_status.observation import (
    Observation,
    ReadFailure,
    ReadFailureKind,
    StatusRead,
    classify_response,
)
from ops_status.request import WatchRequest, parse_poll_message, parse_watch_request

ROOT = Path(__file__).resolve().parents[1]
ARM = "https://management.azure.com"
SUB = "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
#: The request parser's depth limit (ops_status/request.py); the fuzz checks it holds.
MAX_JSON_DEPTH = 32

counts: Counter[str] = Counter()


def check_request(body: bytes) -> None:
    counts["request.tried"] += 1
    try:
        request = parse_watch_request(body, arm_endpoint=ARM)
    except InvalidWatchRequestError:
        counts["request.rejected"] += 1
        return
    counts["request.accepted"] += 1
    _assert_on_endpoint(request)


def _assert_on_endpoint(request: WatchRequest) -> None:
    path = request.target.status_path
    final = urlsplit(ARM + path)
    problems = []
    if final.netloc != "management.azure.com" or final.scheme != "https":
        problems.append("left the endpoint")
    if not path.startswith("/subscriptions/") or path.startswith("//"):
        problems.append("re-rooted path")
    if any(not s or unquote(s) in (".", "..") for s in final.path.split("/")[1:]):
        problems.append("dot or empty segment")
    if any(c in path for c in "\\#\r\n\x00\t "):
        problems.append("unsafe character")
    if problems:
        raise AssertionError(f"{problems}: {path!r}")


def check_response(status: int, headers: dict[str, str], body: bytes) -> None:
    counts["response.tried"] += 1
    observation = classify_response(status, headers, body, now=NOW)
    if isinstance(observation, StatusRead):
        counts["response.status_read"] += 1
    elif isinstance(observation, ReadFailure):
        counts[f"response.{observation.kind.value}"] += 1
    else:
        raise AssertionError(f"unexpected observation {observation!r}")


# -- input classes, through the whole handler ---------------------------------------------

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


def _answers() -> list[Observation]:
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
                _assert_on_endpoint(request)
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


def _intake(**fields: Any) -> dict[str, Any]:
    return {"subscriptionId": SUB, "location": "westus", "operationId": "op-1", **fields}


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _nested(kind: str, levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value} if kind == "object" else [value]
    return value


def _with_path(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the dotted ``path`` set to ``value``."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = value
    return copy


def _renamed(document: dict[str, Any], path: str, new_key: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target[name]
    target[new_key] = target.pop(last)
    return copy


def _nested_text(kind: str, levels: int, leaf: str = "1") -> str:
    """JSON text nested ``levels`` deep, built as text: ``json.dumps`` itself recurses."""
    if kind == "object":
        return '{"a":' * levels + leaf + "}" * levels
    return "[" * levels + leaf + "]" * levels


def _splice(document: dict[str, Any], path: str, raw: str) -> bytes:
    """``document`` as JSON with the dotted ``path`` set to the JSON text ``raw``."""
    head, _, rest = path.partition(".")
    if rest:
        inner = document.get(head) or {}
        raw = _splice(inner, rest, raw).decode("utf-8", "surrogatepass")
    body = {k: v for k, v in document.items() if k != head}
    text = json.dumps(body, ensure_ascii=False)
    joined = (text[:-1] + ", " if body else "{") + f"{json.dumps(head)}: {raw}}}"
    return joined.encode("utf-8", "surrogatepass")


def depth_cases(harness: HandlerHarness, *, top: int = 2000) -> Iterator[Case]:
    """Depth ``d`` = nesting of the whole document as the parser counts it (root = 1)."""
    template = harness.poll_template
    intake = _intake()
    for d in range(1, top + 1):
        ok = "accepted" if d <= MAX_JSON_DEPTH else "rejected"
        answer = StatusRead("Running") if d % 2 else StatusRead("Succeeded")
        if d == 1:
            yield Case("context objects", "intake", _dumps(intake), answer, "accepted")
            yield Case("root array", "intake", b"[]", answer, "rejected")
            continue
        objects, arrays = _nested_text("object", d - 1), _nested_text("array", d - 1)
        yield Case("context objects", "intake", _splice(intake, "context", objects), answer, ok)
        yield Case("unknown field", "intake", _splice(intake, "extra", arrays), answer, ok)
        yield Case("statusUrl", "intake", _splice({}, "statusUrl", objects), answer, "rejected")
        root = _nested_text("array", d).encode()
        yield Case("root array", "intake", root, answer, "rejected")
        yield Case("poll context", "polls", _splice(template, "context", objects), answer, ok)
        if d >= 3:
            inner = '{"a":' + _nested_text("array", d - 2) + "}"
            yield Case("context arrays", "intake", _splice(intake, "context", inner), answer, ok)
            state = _nested_text("object", d - 2)
            yield Case(
                "pollState", "polls", _splice(template, "pollState.extra", state), answer, ok
            )


# The representable instants are 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z; an
# offset moves a local time outside them (0001-01-01T00:00:00+14:00 is 13:59 on 31 Dec 0
# in UTC). The neighbours straddle each edge by a microsecond, a second and an hour.
EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00.000001Z",
    "0001-01-01T13:59:59+14:00",
    "0001-01-01T13:59:59.999999+14:00",
    "0001-01-01T14:00:00+14:00",
    "0001-01-01T14:00:01+14:00",
    "0001-01-01T15:00:00+14:00",
    "0001-01-01T23:58:59+23:59",
    "0001-01-01T23:59:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T09:59:59-14:00",
    "9999-12-31T09:59:59.999999-14:00",
    "9999-12-31T10:00:00-14:00",
    "9999-12-31T08:59:59-14:00",
    "9999-12-31T00:00:00-23:59",
    "9999-12-31T00:01:00-23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T22:59:59Z",
    "9999-12-31T23:59:59+23:59",
    "10000-01-01T00:00:00Z",
    "0000-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
    "2026-11-28T12:00:00Z",
    "2026-11-28T11:59:59.999999Z",
    "2026-11-28T12:00:00.000001Z",
    "2026-11-28T12:00:00+14:00",
    "2026-11-28T12:00:00-14:00",
    "2026-11-28T12:00:00+14:01",
    "2026-11-28T12:00:00+24:00",
    "2026-11-28T12:00:00-00:00",
]

#: Not extremes but spellings: RFC 3339 says ``date-time`` (the schemas' format), while
#: ``datetime.fromisoformat`` reads more (a space, basic format, week dates, hour-only,
#: comma fractions, second offsets, offsets without a colon, a NUL before the zone).
FORMAT_VARIANTS = [
    "2026-11-28 13:00:00Z",
    "20261128T130000Z",
    "2026-W48-6T13:00:00Z",
    "2026-11-28T13Z",
    "2026-11-28T13:00Z",
    "2026-11-28T13:00:00,5Z",
    "2026-11-28T13:00:00.123456789Z",
    "2026-11-28T13:00:00+00:00:30",
    "2026-11-28T13:00:00+1400",
    "2026-11-28T13:00:00z",
    "2026-11-28t13:00:00Z",
    "2026-11-28T13:00:00\x00Z",
    "2026-11-28T13:00:00Z\x00",
    "2026-11-28T13:00:00",
    "2026-11-28",
]

#: Failure kinds whose grace runs from ``since``: an extreme ``since`` meets its arithmetic.
STREAK_KINDS = ("Transient", "TokenUnavailable", "NotFound", "Unauthorized", "Malformed")


def _format(moment: datetime, offset_minutes: int, fraction: bool) -> str:
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if fraction:
        text += f".{moment.microsecond:06d}"
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def timestamp_cases(harness: HandlerHarness, values: Iterable[str]) -> Iterator[Case]:
    template = harness.poll_template
    far = "9999-12-31T23:59:59.999Z"
    answers = _answers()
    for value in values:
        for answer in answers:
            yield Case("deadline", "intake", _dumps(_intake(deadline=value)), answer)
            yield Case(
                "pollState.firstSeen",
                "polls",
                _dumps(
                    _with_path(
                        _with_path(template, "pollState.firstSeen", value),
                        "pollState.deadline",
                        far,
                    )
                ),
                answer,
            )
            yield Case(
                "pollState.deadline",
                "polls",
                _dumps(_with_path(template, "pollState.deadline", value)),
                answer,
            )
            both = _with_path(template, "pollState.firstSeen", value)
            yield Case(
                "pollState.firstSeen = deadline",
                "polls",
                _dumps(_with_path(both, "pollState.deadline", value)),
                answer,
            )
            since = _with_path(
                template,
                "pollState.failures",
                {kind: {"count": 1, "since": value} for kind in STREAK_KINDS},
            )
            yield Case("pollState.failures.since", "polls", _dumps(since), answer)
            first = _with_path(template, "pollState.firstSeen", "0001-01-01T00:00:00Z")
            yield Case(
                "pollState.deadline (first seen 0001)",
                "polls",
                _dumps(_with_path(first, "pollState.deadline", value)),
                answer,
            )


def extreme_neighbours() -> list[str]:
    low = datetime(1, 1, 1, tzinfo=timezone.utc)
    high = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    values = []
    for edge, steps in (
        (low, (0, 1, 1_000_000, 3_600_000_000)),
        (high, (0, -1, -1_000_000, -3_600_000_000)),
    ):
        for step in steps:
            moment = edge + timedelta(microseconds=step)
            for offset in (0, 14 * 60, -14 * 60, 23 * 60 + 59, -(23 * 60 + 59), 1, -1):
                # the local time that, at this offset, names ``moment``, when it is representable
                try:
                    local = (moment + timedelta(minutes=offset)).replace(tzinfo=None)
                except OverflowError:
                    continue
                values.append(_format(local, offset, fraction=True))
                # the same wall time at the other sign: just outside the range
                values.append(_format(local, -offset, fraction=True))
    return sorted(set(values))


def random_timestamps(count: int, seed: int) -> list[str]:
    from hypothesis import strategies as st

    moments = st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
    )
    strategy = st.builds(
        _format,
        moments,
        st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
        st.booleans(),
    )
    return _examples(strategy, count, seed)


def _examples(strategy: Any, count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy``, reproducibly (no shrinking, no database)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    found: list[Any] = []

    @fix_seed(seed)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        found.append(example)

    if count > 0:
        collect()
    return found


#: Whitespace a field may end (or start) with: ASCII, C0/C1 controls, Unicode spaces,
#: separators and the BOM.
SPACES = [
    " ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x0b",
    "\x0c",
    "\x00",
    "\x1c",
    "\x85",
    "\xa0",
    "\u1680",
    "\u2000",
    "\u2028",
    "\u2029",
    "\u202f",
    "\u3000",
    "\ufeff",
    " \n",
    "\n\n",
]


def _string_fields(harness: HandlerHarness) -> list[tuple[str, str, dict[str, Any], str]]:
    """(label, queue, document, dotted path of a string field) for every string field."""
    intake = _intake(
        apiVersion="2025-07-01",
        correlationId="run-1",
        deadline="2026-11-28T13:00:00Z",
        timeout="3600",
        context={"stage": "scale"},
    )
    url = {
        "statusUrl": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Cache/locations/westus/"
        "operationsStatus/op-1?api-version=2025-07-01",
        "correlationId": "run-1",
    }
    poll = harness.poll_template
    poll = _with_path(poll, "correlationId", "run-1")
    poll = _with_path(poll, "deadline", "2026-11-28T13:00:00Z")
    fields = [
        ("intake", intake, name)
        for name in (
            "subscriptionId",
            "location",
            "operationId",
            "apiVersion",
            "correlationId",
            "deadline",
            "timeout",
            "context.stage",
        )
    ]
    fields.append(("intake", url, "statusUrl"))
    fields += [
        ("polls", poll, name)
        for name in (
            "subscriptionId",
            "location",
            "operationId",
            "apiVersion",
            "correlationId",
            "deadline",
            "watchId",
            "submissionId",
            "pollState.firstSeen",
            "pollState.deadline",
            "pollState.lastStatus",
            "pollState.failures.Transient.since",
        )
    ]
    return [(f"{queue} {path}", queue, document, path) for queue, document, path in fields]


def _get(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for name in path.split("."):
        value = value[name]
    return value


def whitespace_cases(harness: HandlerHarness) -> Iterator[Case]:
    answers = [StatusRead("Running"), StatusRead("Succeeded")]
    n = 0
    for label, queue, document, path in _string_fields(harness):
        value = _get(document, path)
        for space in SPACES:
            for where, changed in (("trailing", value + space), ("leading", space + value)):
                n += 1
                yield Case(
                    f"{label} ({where})",
                    queue,
                    _dumps(_with_path(document, path, changed)),
                    answers[n % 2],
                )
    # keys too: a context key, and a failure kind in the poll state
    for space in SPACES:
        intake = _intake(context={"stage" + space: "scale"})
        yield Case("intake context key (trailing)", "intake", _dumps(intake), answers[0])
        poll = _renamed(harness.poll_template, "pollState.failures.Transient", "Transient" + space)
        yield Case("polls pollState.failures key (trailing)", "polls", _dumps(poll), answers[0])


DIGIT_SYSTEMS = {
    "arabic-indic": 0x0660,
    "extended-arabic-indic": 0x06F0,
    "nko": 0x07C0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
    "fullwidth": 0xFF10,
    "math-bold": 0x1D7CE,
    "math-monospace": 0x1D7F6,
}
SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"


def _digits(system: str) -> str:
    if system == "superscript":
        return SUPERSCRIPTS
    return "".join(chr(DIGIT_SYSTEMS[system] + i) for i in range(10))


def _translate(value: str, digits: str, mode: str) -> str:
    positions = [i for i, c in enumerate(value) if "0" <= c <= "9"]
    if mode == "first":
        positions = positions[:1]
    elif mode == "last":
        positions = positions[-1:]
    chars = list(value)
    for i in positions:
        chars[i] = digits[int(chars[i])]
    return "".join(chars)


def unicode_digit_cases(
    harness: HandlerHarness, *, random_count: int = 0, seed: int = 1
) -> Iterator[Case]:
    intake = _intake(
        apiVersion="2025-07-01",
        timeout="3600",
        deadline="2026-11-28T13:00:00Z",
        operationId="op-1234",
        location="eastus2",
    )
    url_query = {
        "statusUrl": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Cache/locations/westus/"
        "operationsStatus/op-1?api-version=",
    }
    poll = _with_path(harness.poll_template, "deadline", "2026-11-28T13:00:00Z")
    targets: list[tuple[str, str, dict[str, Any], str]] = [
        ("intake apiVersion", "intake", intake, "apiVersion"),
        ("intake timeout", "intake", intake, "timeout"),
        ("intake deadline", "intake", intake, "deadline"),
        ("intake subscriptionId", "intake", intake, "subscriptionId"),
        ("intake operationId", "intake", intake, "operationId"),
        ("intake location", "intake", intake, "location"),
        ("polls apiVersion", "polls", poll, "apiVersion"),
        ("polls watchId", "polls", poll, "watchId"),
        ("polls pollState.firstSeen", "polls", poll, "pollState.firstSeen"),
        ("polls pollState.deadline", "polls", poll, "pollState.deadline"),
        ("polls pollState.failures.since", "polls", poll, "pollState.failures.Transient.since"),
    ]
    systems = [*DIGIT_SYSTEMS, "superscript"]
    for label, queue, document, path in targets:
        value = _get(document, path)
        for system in systems:
            for mode in ("all", "first", "last"):
                changed = _translate(value, _digits(system), mode)
                yield Case(label, queue, _dumps(_with_path(document, path, changed)))
    for system in systems:
        for mode in ("all", "first", "last"):
            version = _translate("2025-07-01", _digits(system), mode)
            document = {"statusUrl": url_query["statusUrl"] + version}
            yield Case("intake statusUrl api-version", "intake", _dumps(document))
            # a JSON string timeout is the only place a number travels as text
            yield Case(
                "intake timeout (string)",
                "intake",
                _dumps(_intake(timeout=_translate("900", _digits(system), mode))),
            )
    if random_count:
        from hypothesis import strategies as st

        mixes = st.tuples(
            st.sampled_from(range(len(targets))),
            st.lists(
                st.sampled_from([*"0123456789", *"".join(_digits(s) for s in systems)]),
                min_size=1,
                max_size=4,
            ),
        )
        for index, replacement in _examples(mixes, random_count, seed):
            label, queue, document, path = targets[index]
            value = _get(document, path)
            positions = [i for i, c in enumerate(value) if "0" <= c <= "9"]
            chars = list(value)
            for i, digit in zip(positions, replacement, strict=False):
                chars[i] = digit
            yield Case(
                f"{label} (mixed)", queue, _dumps(_with_path(document, path, "".join(chars)))
            )


# -- non-data AMQP bodies, through the real SDK, the emulator and the real worker ---------


def amqp_bodies(random_count: int = 0, seed: int = 1) -> list[tuple[str, str, Any]]:
    """(label, section kind "value" or "sequence", body). Binary map keys and nesting
    deeper than 40 are left out: the emulator cannot carry them (see docs/reliability.md)."""
    valid = {
        "subscriptionId": SUB,
        "location": "westus",
        "operationId": "op-1",
        "correlationId": "amqp",
    }
    bodies: list[tuple[str, str, Any]] = [
        ("amqp-value string", "value", ""),
        ("amqp-value string", "value", "hello"),
        ("amqp-value string", "value", "\u00e9\u4e2d\U0001f600 \n\x00"),
        ("amqp-value string: a valid request as text", "value", json.dumps(valid)),
        ("amqp-value string: 10 KB", "value", "x" * 10_000),
        ("amqp-value binary: a valid request as bytes", "value", json.dumps(valid).encode()),
        ("amqp-value binary", "value", b"\xff\xfe\x00"),
        ("amqp-value number", "value", 0),
        # the SDK encodes a Python int as an AMQP int (32 bits)
        ("amqp-value number", "value", -(2**31)),
        ("amqp-value number", "value", 2**31 - 1),
        ("amqp-value number", "value", 1.5),
        ("amqp-value bool", "value", True),
        ("amqp-value list", "value", [1, "a", None, [b"x"]]),
        ("amqp-value map: a valid request as a map", "value", valid),
        ("amqp-value map", "value", {}),
        ("amqp-value map", "value", {1: "a", 2: [1, 2], "k": {"n": None}}),
        ("amqp-value map: nested 40", "value", _nested("object", 40)),
        ("amqp-sequence", "sequence", [[1, 2, 3]]),
        ("amqp-sequence", "sequence", [[]]),
        ("amqp-sequence: a valid request map", "sequence", [[valid]]),
        ("amqp-sequence: two sections", "sequence", [["a"], ["b", 2]]),
        ("amqp-sequence: nested 40", "sequence", [[_nested("array", 39)]]),
    ]
    if random_count:
        from hypothesis import strategies as st

        leaves = st.one_of(
            st.text(st.characters(blacklist_categories=["Cs"]), max_size=20),
            st.integers(min_value=-(2**31), max_value=2**31 - 1),
            st.booleans(),
            st.floats(allow_nan=False),
            st.binary(max_size=20),
        )
        values = st.recursive(
            leaves,
            lambda inner: st.one_of(
                st.lists(inner, max_size=4),
                st.dictionaries(st.text(max_size=8), inner, max_size=4),
            ),
            max_leaves=12,
        )
        kinds = st.one_of(
            st.tuples(st.just("value"), values),
            st.tuples(
                st.just("sequence"), st.lists(st.lists(values, max_size=3), min_size=1, max_size=3)
            ),
        )
        for kind, body in _examples(kinds, random_count, seed):
            label = "amqp-value (generated)" if kind == "value" else "amqp-sequence (generated)"
            bodies.append((label, kind, body))
    return bodies


def _worker_environment(stack: Any) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "IDENTITY_SERVER_THUMBPRINT")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection"))
    }
    environment.update(stack.environment(identity_based=True))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@dataclass
class AmqpRun:
    tally: ClassTally
    completed: bool
    """Both queues empty at the end: every message was completed."""
    dead_lettered: int
    abandoned: int
    """``worker.abandoning`` lines in the worker's log."""
    log_path: str


def run_amqp_class(
    random_count: int = 0, seed: int = 1, *, timeout: float = 60.0, log_path: Path | None = None
) -> AmqpRun:
    """Send every body to the intake queue (and every other one to the polls queue) with
    the real SDK, run the real worker, and count what became of each message."""
    from azure.servicebus import ServiceBusClient
    from azure.servicebus.amqp import AmqpAnnotatedMessage

    from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, POLLS_QUEUE, LocalStack

    tally = ClassTally()
    bodies = amqp_bodies(random_count, seed)
    log_path = log_path or Path(f"/tmp/ops-status-fuzz-amqp-{os.getpid()}.log")
    log_path.unlink(missing_ok=True)
    with LocalStack(lock_duration=5.0, max_delivery_count=3) as stack:
        client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
        # A pipeline's connection (Send on the intake queue only) for the intake queue; the
        # polls queue takes the app's (root) one, as a bug in the product would send there.
        pipeline = ServiceBusClient.from_connection_string(stack.pipeline_connection_string)
        sent: dict[str, tuple[str, str, Any]] = {}
        with (
            pipeline.get_queue_sender(INTAKE_QUEUE) as intake,
            client.get_queue_sender(POLLS_QUEUE) as polls,
        ):
            for i, (label, kind, body) in enumerate(bodies):
                for queue, sender in (("intake", intake), ("polls", polls)):
                    if queue == "polls" and i % 2:
                        continue
                    message_id = f"amqp-{queue}-{i}"
                    section = {"value_body": body} if kind == "value" else {"sequence_body": body}
                    sender.send_messages(
                        AmqpAnnotatedMessage(**section, properties={"message_id": message_id})
                    )
                    sent[message_id] = (label, queue, body)
        pipeline.close()
        polls_sent_by_us = stack.servicebus.sent_count(POLLS_QUEUE)
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "ops_status", "worker", "--concurrency", "4"],
                env=_worker_environment(stack),
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + timeout
                with client.get_subscription_receiver(EVENTS_TOPIC, "all") as receiver:
                    while time.monotonic() < deadline and not all(m in events for m in sent):
                        for message in receiver.receive_messages(
                            max_message_count=50, max_wait_time=0.5
                        ):
                            event = json.loads(b"".join(message.body))
                            key = (event.get("data") or {}).get("receivedMessageId") or event["id"]
                            events[key].append(event)
                            receiver.complete_message(message)
                stack.servicebus.wait_until(
                    lambda: all(
                        stack.servicebus.active_count(q) == 0 for q in (INTAKE_QUEUE, POLLS_QUEUE)
                    ),
                    timeout=5,
                )
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=10)
        client.close()
        completed = all(stack.servicebus.active_count(q) == 0 for q in (INTAKE_QUEUE, POLLS_QUEUE))
        dead = sum(stack.servicebus.dead_letter_count(q) for q in (INTAKE_QUEUE, POLLS_QUEUE))
        followed_up = stack.servicebus.sent_count(POLLS_QUEUE) - polls_sent_by_us
    abandoned = log_path.read_text(errors="replace").count("worker.abandoning")
    schema = HandlerHarness().schemas["event"]
    for message_id, (label, queue, body) in sent.items():
        tally.generated += 1
        tally.generated_by_label[label] += 1
        shown = f"[{queue}] {label}: {str(body)[:120]!r}"
        got = events.get(message_id, [])
        if not got:
            tally.escaped += 1
            signature = "no event: the message was abandoned, dead-lettered or never handled"
            n, first, trace = tally.escapes.get(signature, (0, shown, f"see {log_path}"))
            tally.escapes[signature] = (n + 1, first, trace)
            continue
        if all(e["type"] == "OpsStatus.Watch.Rejected" for e in got):
            tally.rejected += 1
        else:
            tally.accepted += 1
            tally.accepted_by_label[label] += 1
        if len(got) > 1:
            tally.violations += 1
            tally.note(tally.violation_examples, "more than one event", shown)
        for event in got:
            errors = list(schema.iter_errors(event))
            if errors:
                tally.violations += 1
                tally.note(
                    tally.violation_examples,
                    f"event not schema-valid: {errors[0].message[:60]}",
                    shown,
                )
            if event["type"] == "OpsStatus.Watch.Rejected" and not any(
                "AMQP" in e for e in event["data"].get("errors", [])
            ):
                tally.violations += 1
                tally.note(
                    tally.violation_examples,
                    "rejected for another reason than the body section",
                    shown,
                )
    if followed_up:
        tally.violations += 1
        tally.note(
            tally.violation_examples, f"{followed_up} polls scheduled for non-data bodies", "-"
        )
    return AmqpRun(tally, completed, dead, abandoned, str(log_path))


# -- hypothesis engine ----------------------------------------------------------------


def run_hypothesis(seconds: float, seed: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st

    pieces = st.sampled_from(
        [
            "https://",
            "http://",
            "//",
            "/",
            "\\",
            "@",
            ":",
            ":443",
            ":444",
            "management.azure.com",
            "MANAGEMENT.AZURE.COM",
            "evil.example",
            ".",
            "..",
            "%2e",
            "%2E%2E",
            "%2f",
            "%5c",
            "%40",
            "%25",
            "%00",
            "#",
            "?",
            "&",
            "=",
            "api-version=2025-07-01",
            "subscriptions",
            SUB,
            "providers",
            "Microsoft.Cache",
            "locations",
            "westus",
            "operationsStatus",
            "op",
            "\r\n",
            "\x00",
            "\u0435",
            "xn--",
            "[::1]",
            " ",
            "\t",
        ]
    )
    urls = st.one_of(
        st.lists(pieces, max_size=16).map("".join),
        st.lists(pieces, max_size=12).map(
            lambda p: f"https://management.azure.com/subscriptions/{SUB}/" + "".join(p)
        ),
        st.text(max_size=120),
    )
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), urls
    )
    json_values = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
    keys = st.sampled_from(
        [
            "subscriptionId",
            "location",
            "operationId",
            "apiVersion",
            "statusUrl",
            "correlationId",
            "timeout",
            "deadline",
            "context",
            "pollState",
        ]
    )
    segment_like = st.lists(pieces, min_size=1, max_size=4).map("".join)
    valid_bases = st.sampled_from(
        [
            {"subscriptionId": SUB, "location": "westus", "operationId": "op-1"},
            {
                "statusUrl": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Cache/locations/"
                "westus/operationsStatus/op-1?api-version=2025-07-01"
            },
        ]
    )
    documents = st.one_of(
        st.dictionaries(keys, json_values, max_size=8),
        # mostly valid requests with one to three fields made hostile
        st.builds(
            lambda base, extra: {**base, **extra},
            valid_bases,
            st.dictionaries(keys, st.one_of(json_values, segment_like), max_size=3),
        ),
        st.builds(
            lambda suffix: {"statusUrl": f"{ARM}/subscriptions/{SUB}/{suffix}"},
            segment_like.map(lambda s: s + "?api-version=2025-07-01"),
        ),
    )
    bodies = st.one_of(
        documents.map(lambda d: json.dumps(d).encode()),
        st.builds(
            lambda d, extra: json.dumps(d)[:-1].encode() + extra,
            documents,
            st.binary(max_size=40),
        ),
        st.binary(max_size=400),
    )
    responses = st.tuples(
        st.one_of(st.just(200), st.integers(min_value=100, max_value=599)),
        st.dictionaries(
            st.sampled_from(
                [
                    "retry-after",
                    "retry-after-ms",
                    "x-ms-retry-after-ms",
                    "x-ms-ratelimit-remaining-subscription-reads",
                ]
            ),
            st.text(max_size=40),
            max_size=3,
        ),
        st.one_of(
            st.binary(max_size=400),
            st.builds(lambda v: json.dumps({"status": v}).encode(), json_values),
            st.builds(lambda v: json.dumps({"status": "Failed", "error": v}).encode(), json_values),
            json_values.map(lambda v: json.dumps(v).encode()),
        ),
    )
    deadline = time.monotonic() + seconds

    class Done(BaseException):  # not an Exception: hypothesis stops at once, no shrinking
        pass

    @fix_seed(seed)
    @settings(
        max_examples=10_000_000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bodies, responses)
    def fuzz(body: bytes, response: tuple[int, dict[str, str], bytes]) -> None:
        if time.monotonic() > deadline:
            raise Done
        check_request(body)
        check_response(*response)

    with contextlib.suppress(Done):
        fuzz()


# -- atheris engine -------------------------------------------------------------------


def run_atheris(seconds: float, seed: int) -> None:
    import os

    import atheris

    _instrument(atheris)
    deadline = time.monotonic() + seconds

    def one_input(data: bytes) -> None:
        if time.monotonic() > deadline:
            # libFuzzer exits without running Python's atexit hooks: report, then leave.
            _print("atheris", seconds)
            sys.stdout.flush()
            os._exit(0)
        provider = atheris.FuzzedDataProvider(data)
        choice = provider.ConsumeIntInRange(0, 4)
        if choice == 0:
            check_request(provider.ConsumeBytes(provider.remaining_bytes()))
        elif choice == 1:
            url = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
            check_request(json.dumps({"statusUrl": url}).encode())
        elif choice == 2:
            tail = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
            query = "" if "?" in tail else "?api-version=2025-07-01"
            url = f"{ARM}/subscriptions/{SUB}/{tail}{query}"
            check_request(json.dumps({"statusUrl": url}).encode())
        elif choice == 3:
            location = provider.ConsumeUnicodeNoSurrogates(12) or "westus"
            operation = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
            document = {"subscriptionId": SUB, "location": location, "operationId": operation}
            check_request(json.dumps(document).encode())
        else:
            status = provider.ConsumeIntInRange(100, 599)
            retry = provider.ConsumeUnicodeNoSurrogates(8)
            check_response(status, {"retry-after": retry}, provider.ConsumeBytes(10_000))

    atheris.Setup(
        [sys.argv[0], f"-max_total_time={int(seconds) + 5}", f"-seed={seed}", "-max_len=4096"],
        one_input,
    )
    atheris.Fuzz()


def _instrument(atheris: object) -> None:
    """Coverage feedback for ops_status only (instrument_all takes minutes on the SDKs)."""
    import inspect

    for name, module in list(sys.modules.items()):
        if not name.startswith("ops_status"):
            continue
        for _, member in inspect.getmembers(module):
            functions = [member] if inspect.isfunction(member) else []
            if inspect.isclass(member):
                functions = [f for _, f in inspect.getmembers(member, inspect.isfunction)]
            for function in functions:
                if getattr(function, "__module__", "") == name:
                    atheris.instrument_func(function)  # type: ignore[attr-defined]


def _print(engine: str, seconds: float) -> None:
    print(f"fuzz run: engine {engine}, {seconds:g} s budget")
    for target in ("request", "response"):
        tried = counts[f"{target}.tried"]
        detail = ", ".join(
            f"{k.split('.', 1)[1]} {v}"
            for k, v in sorted(counts.items())
            if k.startswith(target + ".") and not k.endswith(".tried")
        )
        print(f"  {target:8}: {tried} inputs tried ({detail})")
    print("  no property violated" if counts["request.tried"] else "  nothing ran")


# -- running the classes ------------------------------------------------------------------


@dataclass
class ClassReport:
    tallies: dict[str, ClassTally]
    amqp: AmqpRun | None
    wall_time: dict[str, float]

    @property
    def escaped(self) -> int:
        return sum(t.escaped for t in self.tallies.values())

    @property
    def violations(self) -> int:
        return sum(t.violations for t in self.tallies.values())


def run_classes(
    classes: Iterable[str] = CLASSES,
    *,
    examples: int = 1000,
    seed: int = 1,
    quick: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> ClassReport:
    """Generate and run every chosen class; see the module docstring. ``quick`` (for the
    smoke test) sweeps depth 1-64 and a third of the fixed extremes, and generates
    nothing at random."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    harness = HandlerHarness()
    tallies: dict[str, ClassTally] = {}
    walls: dict[str, float] = {}
    amqp = None
    for name in classes:
        started = time.monotonic()
        tally = ClassTally()
        if quick:
            examples = 0
        if name == "depth":
            cases: Iterable[Case] = depth_cases(harness, top=64 if quick else 2000)
        elif name == "timestamps":
            values = (
                EXTREME_TIMES[::3]
                if quick
                else [
                    *EXTREME_TIMES,
                    *extreme_neighbours(),
                    *FORMAT_VARIANTS,
                    *random_timestamps(examples, seed),
                ]
            )
            cases = timestamp_cases(harness, values)
        elif name == "whitespace":
            cases = whitespace_cases(harness)
        elif name == "unicode-digits":
            cases = unicode_digit_cases(harness, random_count=examples, seed=seed)
        elif name == "amqp-bodies":
            amqp = run_amqp_class(max(examples // 10, 0), seed)
            tally = amqp.tally
            cases = ()
        else:
            raise ValueError(f"unknown class {name!r}; expected one of {CLASSES}")
        for case in cases:
            harness.run(case, tally)
        tallies[name] = tally
        walls[name] = time.monotonic() - started
        progress(f"  {name}: {tally.generated} generated in {walls[name]:.1f} s")
    return ClassReport(tallies, amqp, walls)


def format_classes(report: ClassReport) -> str:
    lines = [
        "| class | generated | rejected | accepted | escaped (exception) "
        "| accepted off-contract | property violations | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in report.tallies.items():
        lines.append(
            f"| {name} | {t.generated:,} | {t.rejected:,} | {t.accepted:,} | {t.escaped:,} | "
            f"{t.off_contract:,} | {t.violations:,} | {report.wall_time[name]:.1f} s |"
        )
    if report.amqp is not None:
        a = report.amqp
        lines.append(
            f"\namqp-bodies: every message completed: {a.completed}; dead-lettered "
            f"{a.dead_lettered}; worker.abandoning lines {a.abandoned} (log {a.log_path})"
        )
    for name, t in report.tallies.items():
        if t.accepted_by_label:
            accepted = ", ".join(
                f"{label} {n}/{t.generated_by_label[label]}"
                for label, n in sorted(t.accepted_by_label.items())
            )
            lines.append(f"\n{name}: accepted, by what was varied: {accepted}")
        for signature, (n, example, trace) in t.escapes.items():
            lines.append(f"\n{name}: ESCAPED {n}x: {signature}\n  first input: {example}")
            lines.extend("  " + line for line in trace.rstrip().splitlines()[-12:])
        for problem, (n, example) in t.violation_examples.items():
            lines.append(f"\n{name}: VIOLATION {n}x: {problem}\n  first input: {example}")
        for reason, (n, example) in t.off_contract_examples.items():
            lines.append(
                f"\n{name}: accepted off-contract {n}x: {reason}\n  first input: {example}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60, help="engine budget (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    parser.add_argument(
        "--classes", default=",".join(CLASSES), help="comma-separated input classes, or none"
    )
    parser.add_argument(
        "--examples", type=int, default=1000, help="hypothesis examples per class (default 1000)"
    )
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    status = 0
    classes = [c.strip() for c in args.classes.split(",") if c.strip() and c.strip() != "none"]
    if classes:
        import logging

        # The product logs a line per rejection: tens of thousands here. Not printed.
        product = logging.getLogger("ops_status")
        product.addHandler(logging.NullHandler())
        product.propagate = False
        started = time.monotonic()
        report = run_classes(
            classes,
            examples=args.examples,
            seed=args.seed,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        print(f"input classes: seed {args.seed}, {args.examples} hypothesis examples per class")
        print(format_classes(report))
        print(f"  wall time {time.monotonic() - started:.1f} s\n")
        if report.escaped or report.violations:
            status = 1
    if args.seconds > 0:
        if args.engine == "atheris":
            run_atheris(args.seconds, args.seed)  # exits the process itself
            return status
        started = time.monotonic()
        run_hypothesis(args.seconds, args.seed)
        _print("hypothesis", args.seconds)
        print(f"  wall time {time.monotonic() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
