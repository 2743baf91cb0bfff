"""What the commands print, and the exit codes they return.

Results go to stdout (``emit``), messages and progress to stderr (``say``). The exit-code
table is the same for every command; ``EXIT_CODES_HELP`` is how ``--help`` shows it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ops_status.observation import Observation, ReadFailureKind, StatusRead

if TYPE_CHECKING:
    from ops_status.listen import ReceivedEvent

__all__ = [
    "EXIT_BY_STATUS",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUNNING",
    "EXIT_TIMED_OUT",
    "EXIT_UNREADABLE",
    "EXIT_USAGE",
    "duration",
    "emit",
    "emit_error_payload",
    "event_line",
    "print_event",
    "say",
    "status_text",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TIMED_OUT = 2
EXIT_RUNNING = 3
EXIT_UNREADABLE = 4
EXIT_ERROR = 5
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

#: A terminal status (of an event or a followed watch) → exit code; anything else is 1.
EXIT_BY_STATUS = {"Succeeded": EXIT_OK, "TimedOut": EXIT_TIMED_OUT}

EXIT_CODES_HELP = """\
exit codes:
  0   succeeded (operation succeeded, watch submitted, watches listed, listener done,
      worker stopped)
  1   operation failed or canceled, or watch request rejected
  2   timed out (watch deadline passed, or listen --timeout passed first)
  3   check only: still running
  4   check only: status could not be read
  5   Service Bus, credential or unexpected error
  64  bad arguments, invalid watch request, missing or malformed setting
  130 interrupted (Ctrl-C)
"""


def emit(text: str) -> None:
    """A result line on stdout.

    When the reader has gone (``listen | head -1``), the rest of the output is dropped and
    the command carries on to its own exit code: a pipeline's gate must see the outcome,
    not 5 for a BrokenPipeError.
    """
    try:
        print(text, flush=True)  # noqa: T201 - CLI output
    except BrokenPipeError:
        # The Python docs' recipe (signal module, "Note on SIGPIPE"): point stdout at
        # devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def say(text: str) -> None:
    """A message line on stderr."""
    print(f"ops-status: {text}", file=sys.stderr, flush=True)  # noqa: T201 - CLI output


def emit_error_payload(error: Any) -> None:
    """ARM's error object, indented, after a one-line result."""
    if error:
        emit("error: " + json.dumps(error, indent=2, ensure_ascii=False))


def status_text(observation: Observation) -> str:
    """``InProgress 40%``, ``throttled (...)`` or ``status not readable (...)``."""
    if isinstance(observation, StatusRead):
        percent = observation.percent_complete
        return observation.status + (f" {percent:g}%" if percent is not None else "")
    if observation.kind is ReadFailureKind.THROTTLED:
        wait = observation.retry_after
        after = f"; Retry-After {wait:g} s" if wait is not None else ""
        return f"throttled ({observation.detail}{after})"
    return f"status not readable ({observation.detail})"


def event_line(event: Mapping[str, Any], *, trace_id: str | None = None) -> str:
    """One line per event: time, status, then the fields a reader scans for, and the
    trace id (``traceId``) that finds the watch's whole trace."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        data = {}
    arm_status = data.get("armStatus")
    fields = [
        ("operation", data.get("operationId")),
        ("correlationId", data.get("correlationId")),
        ("reason", data.get("reason")),
        ("armStatus", arm_status if arm_status != data.get("status") else None),
        ("polls", data.get("polls")),
        ("detail", data.get("detail")),
        ("errors", "; ".join(data["errors"]) if isinstance(data.get("errors"), list) else None),
        ("traceId", trace_id),
    ]
    text = " ".join(f"{name}={value}" for name, value in fields if value is not None)
    return f"{event.get('time', '-')} {data.get('status', event.get('type', '?'))} {text}".rstrip()


def print_event(event: ReceivedEvent, *, as_json: bool) -> None:
    """An event as one line (and its error payload), or as one JSON line."""
    if event.event is None:
        say(f"warning: message {event.message_id} is not an ops-status event (not JSON)")
        return
    if as_json:
        emit(json.dumps(event.event, ensure_ascii=False))
        return
    trace = event.trace
    emit(event_line(event.event, trace_id=trace.trace_id if trace else None))
    emit_error_payload(event.data.get("error"))


def duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
