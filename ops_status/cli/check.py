"""``ops-status check``: read an operation's status once, with the function's ARM client."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ops_status.cli import options, wiring
from ops_status.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RUNNING,
    EXIT_UNREADABLE,
    emit,
    emit_error_payload,
    status_text,
)
from ops_status.observation import Observation, ReadFailure

__all__ = ["add_parser", "check_outcome", "observation_document", "run"]


def add_parser(commands: Any) -> None:
    parser = options.declare_command(
        commands,
        "check",
        summary="read an operation's status once",
        description=(
            "One status read now, with the function's ARM client, credential and "
            "classification (Succeeded/Completed, Failed, Canceled/Cancelled end an operation; "
            "every other status means still running). Needs no Service Bus."
        ),
        example='  python -m ops_status check --status-url "$STATUS_URL" --json',
        exit_codes=(
            "exit codes: 0 succeeded, 1 failed or canceled, 3 still running,\n"
            "  4 status not readable (throttled, HTTP 4xx/5xx, timeout, garbled answer),\n"
            "  5 credential error, 64 usage"
        ),
    )
    options.add_operation(parser)
    options.add_arm(parser)
    options.add_output(
        parser, "print {outcome, status, percentComplete, error, readFailure, ...} as JSON"
    )
    parser.set_defaults(command=run, default_log_level="ERROR", sdk_quiet=True)


def run(args: argparse.Namespace) -> int:
    settings = wiring.arm_settings(args)
    request = options.watch_request(args, settings)
    with wiring.closed_after(wiring.status_reader(settings)) as reader:
        observation = reader.get_operation_status(request)
    outcome, code = check_outcome(observation)
    document = observation_document(observation, outcome)
    document["statusUrl"] = settings.arm_endpoint + request.target.status_path
    if args.json:
        emit(json.dumps(document))
    else:
        prefix = f"{outcome}: " if isinstance(observation, ReadFailure) else ""
        emit(prefix + status_text(observation))
        emit_error_payload(document.get("error"))
    return code


def check_outcome(observation: Observation) -> tuple[str, int]:
    """``(outcome, exit code)``: Succeeded 0, Failed/Canceled 1, Running 3, Unreadable 4."""
    if isinstance(observation, ReadFailure):
        return "Unreadable", EXIT_UNREADABLE
    state = observation.state
    if state is None:
        return "Running", EXIT_RUNNING
    return state.value, EXIT_OK if state.value == "Succeeded" else EXIT_FAILED


def observation_document(observation: Observation, outcome: str) -> dict[str, Any]:
    """What ``check --json`` prints about one read."""
    if isinstance(observation, ReadFailure):
        return {
            "outcome": outcome,
            "status": None,
            "readFailure": observation.kind.value,
            "detail": observation.detail,
            "httpStatus": observation.http_status,
            "retryAfter": observation.retry_after,
            "error": dict(observation.error) if observation.error else None,
        }
    return {
        "outcome": outcome,
        "status": observation.status,
        "percentComplete": observation.percent_complete,
        "startTime": observation.start_time,
        "endTime": observation.end_time,
        "operationName": observation.name,
        "resourceId": observation.resource_id,
        "retryAfter": observation.retry_after,
        "error": dict(observation.error) if observation.error else None,
    }
