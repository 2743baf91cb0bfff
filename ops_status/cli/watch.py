"""``ops-status watch``: poll one operation to its end from here (no Service Bus), with
the function's reader, policy and decision; print the event the function would publish."""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import closing
from typing import TYPE_CHECKING, Any, TextIO

from ops_status.cli import options, wiring
from ops_status.cli.output import (
    EXIT_BY_STATUS,
    EXIT_FAILED,
    duration,
    emit,
    emit_error_payload,
    event_line,
    status_text,
)

if TYPE_CHECKING:
    from ops_status.pipeline import PollReport

__all__ = ["Progress", "add_parser", "run"]


def add_parser(commands: Any) -> None:
    parser = options.declare_command(
        commands,
        "watch",
        summary="poll an operation until it ends (block instead of using the queue)",
        description=(
            "Poll one operation to its end from here, with the function's ARM client, poll "
            "policy (OPS_STATUS_POLL_* settings, Retry-After) and decision, and print the "
            "terminal event the function would publish (human summary and ARM's error "
            "payload, or the CloudEvent with --json). Progress goes to stderr: one line "
            "rewritten in place on a terminal, a line per read otherwise. Needs no Service Bus."
        ),
        example=(
            '  python -m ops_status watch --status-url "$STATUS_URL" --timeout 1800 \\\n'
            '      --correlation-id "$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT"'
        ),
        exit_codes=(
            "exit codes: 0 succeeded, 1 failed or canceled (or the status could not be read\n"
            "  for good), 2 timed out, 5 credential error, 64 usage"
        ),
    )
    options.add_operation(parser)
    options.add_watch_options(parser)
    options.add_arm(parser)
    options.add_output(parser, "print the terminal CloudEvent as JSON")
    parser.set_defaults(command=run, default_log_level="ERROR", sdk_quiet=True)


def run(args: argparse.Namespace) -> int:
    from ops_status.clock import utcnow
    from ops_status.events import build_terminal_event
    from ops_status.pipeline import follow_operation

    settings = wiring.arm_settings(args)
    request = options.watch_request(args, settings)
    progress = Progress(sys.stderr, live=sys.stderr.isatty())
    with wiring.closed_after(wiring.status_reader(settings)) as reader, closing(progress):
        finish = follow_operation(
            request, reader, settings, sleep=progress.sleep, on_poll=progress.update
        )
    event = build_terminal_event(finish, arm_endpoint=settings.arm_endpoint, now=utcnow())
    document = json.loads(event.body)
    if args.json:
        emit(json.dumps(document))
    else:
        emit(event_line(document))
        emit_error_payload(document["data"].get("error"))
    return EXIT_BY_STATUS.get(finish.outcome.status.value, EXIT_FAILED)


class Progress:
    """``watch`` progress on stderr: one line rewritten in place on a terminal, else one
    plain line per status read (what a pipeline log keeps)."""

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self._stream = stream
        self._live = live
        self._start = time.monotonic()
        self._status = "starting"
        self._polls = 0
        self._due: float | None = None
        self._width = 0

    def update(self, report: PollReport) -> None:
        from ops_status.decision import Reschedule

        self._start = time.monotonic() - report.elapsed
        self._status = status_text(report.observation)
        state = report.request.state
        if state is not None and state.consecutive_failures > 1:
            self._status += f", {state.consecutive_failures} in a row"
        self._polls = report.polls
        action = report.action
        self._due = time.monotonic() + action.delay if isinstance(action, Reschedule) else None
        if self._live:
            self._draw()
        else:
            self._stream.write(f"ops-status: {self._line()}\n")
            self._stream.flush()

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 1.0) if self._live else left)
            if self._live:
                self._draw()

    def close(self) -> None:
        if self._live and self._width:
            self._stream.write("\n")
            self._stream.flush()

    def _line(self) -> str:
        now = time.monotonic()
        next_check = f"next check in {duration(self._due - now)}" if self._due else "done"
        return f"[{duration(now - self._start)}] {self._status}  polls={self._polls}  {next_check}"

    def _draw(self) -> None:
        line = self._line()
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = max(self._width, len(line))
