"""``ops-status ls``: list the watches in flight, by browsing the polls queue.

Every running watch is one follow-up on the polls queue, scheduled for its next read;
``ls`` peeks them all (``ops_status.inflight``) and prints one line (or one JSON object)
per watch. Peeking never receives, locks, settles or counts a delivery, so ``ls`` can run
beside the workers at any time. It needs Listen (Azure Service Bus Data Receiver) on the
polls queue, nothing else.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ops_status import settings as names
from ops_status.cli import options, wiring
from ops_status.cli.output import EXIT_OK, duration, emit, say
from ops_status.clock import format_time, utcnow
from ops_status.inflight import (
    InFlightWatch,
    WatchFilter,
    browse_messages,
    in_flight_watch,
)

__all__ = ["add_parser", "render_table", "run", "watch_document"]

_COLUMNS = ("OPERATION", "CORRELATION ID", "STATUS", "READS", "FIRST SEEN", "NEXT READ", "CONTEXT")


def add_parser(commands: Any) -> None:
    parser = options.declare_command(
        commands,
        "ls",
        summary="list the watches in flight (browses the polls queue; changes nothing)",
        description=(
            "List every watch still running: its operation, correlation id, context, ARM's "
            "last status and percentComplete, the reads so far, when it was first seen and "
            "when its next read is due. ls browses (peeks) the polls queue, where each "
            "running watch waits as one scheduled follow-up: it never receives, locks or "
            "settles a message, so it is safe beside running workers. Needs Azure Service "
            "Bus Data Receiver (Listen) on the polls queue. A follow-up that does not parse "
            "is listed as unreadable."
        ),
        example='  python -m ops_status ls --correlation-id "$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT"',
        exit_codes=(
            "exit codes: 0 listed (also when nothing is in flight), 5 Service Bus or "
            "credential error,\n  64 usage or missing setting"
        ),
    )
    which = parser.add_argument_group("which watches (default: all; filters combine)")
    which.add_argument("--correlation-id", metavar="ID", help="only this correlation id")
    which.add_argument(
        "--subscription", metavar="GUID", help="only operations in this Azure subscription"
    )
    which.add_argument(
        "--status",
        metavar="STATUS",
        help="only watches whose last ARM status is this (case-insensitive), e.g. InProgress",
    )
    sb = options.add_service_bus(parser)
    sb.add_argument(
        "--queue",
        dest="polls_queue",
        metavar="NAME",
        help="the polls queue (OPS_STATUS_POLLS_QUEUE)",
    )
    arm = parser.add_argument_group("parsing (default: the function's settings)")
    arm.add_argument(
        "--arm-endpoint",
        metavar="URL",
        help="the ARM endpoint a follow-up's statusUrl must point at (OPS_STATUS_ARM_ENDPOINT)",
    )
    options.add_credential(sb)
    options.add_output(parser, "print one JSON array of watches")
    parser.set_defaults(command=run, default_log_level="ERROR", sdk_quiet=True)


def run(args: argparse.Namespace) -> int:
    selected = WatchFilter(args.correlation_id, args.subscription, args.status)
    arm = wiring.arm_settings(args)
    queue = wiring.entity_name(args, names.POLLS_QUEUE)
    client = wiring.service_bus_client(args)
    with client, client.get_queue_receiver(queue) as receiver:
        watches = [
            watch
            for watch in (
                in_flight_watch(message, arm_endpoint=arm.arm_endpoint, policy=arm.policy)
                for message in browse_messages(receiver, entity=queue)
            )
            if selected.matches(watch)
        ]
    now = utcnow()
    if args.json:
        emit(json.dumps([watch_document(w, arm.arm_endpoint, now) for w in watches]))
    elif watches:
        for line in render_table(watches, now):
            emit(line)
    unreadable = sum(1 for w in watches if w.request is None)
    readable = len(watches) - unreadable
    say(
        f"{readable} watch{'' if readable == 1 else 'es'} in flight on {queue}"
        + (
            f", {unreadable} unreadable follow-up{'' if unreadable == 1 else 's'}"
            if unreadable
            else ""
        )
        + ("" if selected.empty else " (filtered)")
    )
    return EXIT_OK


def watch_document(watch: InFlightWatch, arm_endpoint: str, now: datetime) -> dict[str, Any]:
    """What ``ls --json`` prints about one follow-up. ``dueNow``: receivable now (active,
    or scheduled for a time already passed)."""
    message = watch.message
    due = watch.next_read_due
    document: dict[str, Any] = {
        "sequenceNumber": message.sequence_number,
        "messageId": message.message_id,
        "messageState": message.state,
        "deliveryCount": message.delivery_count,
        "nextReadDue": None if due is None else format_time(due),
        "dueNow": due is None or due <= now,
    }
    request = watch.request
    if request is None:
        document["unreadable"] = watch.problem
        return document
    state = request.state
    target = request.target
    document.update(
        unreadable=None,
        watchId=request.watch_id,
        submissionId=request.submission_id,
        operationId=target.operation_id,
        subscriptionId=target.subscription_id,
        location=target.location,
        statusUrl=arm_endpoint + target.status_path,
        correlationId=request.correlation_id,
        context=dict(request.context) if request.context is not None else None,
        lastStatus=state.last_status if state else None,
        percentComplete=state.percent_complete if state else None,
        reads=state.attempt if state else 0,
        consecutiveFailures=state.consecutive_failures if state else 0,
        firstSeen=format_time(state.first_seen) if state else None,
        deadline=format_time(state.deadline) if state else None,
    )
    return document


def render_table(watches: Sequence[InFlightWatch], now: datetime) -> list[str]:
    """A header and one aligned row per watch; an unreadable follow-up is one line of its own."""
    rows: list[tuple[str, ...]] = [_COLUMNS]
    notes: list[str] = []
    for watch in watches:
        if watch.request is None:
            notes.append(
                f"unreadable follow-up #{watch.message.sequence_number} "
                f"(messageId {watch.message.message_id}): {watch.problem}"
            )
            continue
        rows.append(_row(watch, now))
    lines = []
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
    return lines + notes


def _row(watch: InFlightWatch, now: datetime) -> tuple[str, ...]:
    assert watch.request is not None
    request, state = watch.request, watch.request.state
    status = (state.last_status if state else None) or "-"
    if state is not None and state.percent_complete is not None:
        status += f" {state.percent_complete:g}%"
    due = watch.next_read_due
    if due is None or due <= now:
        next_read = "due now"
    else:
        wait = (due - now).total_seconds()
        next_read = "in <1s" if wait < 1 else "in " + duration(wait)
    first_seen = "-"
    if state is not None:
        first_seen = f"{format_time(state.first_seen)[:19]}Z"
    return (
        request.target.operation_id,
        request.correlation_id or "-",
        status,
        str(state.attempt if state else 0),
        first_seen,
        next_read,
        _context_text(request.context),
    )


def _context_text(context: Mapping[str, Any] | None) -> str:
    """``k=v k2=v2`` for a flat context (the common case), compact JSON otherwise."""
    if not context:
        return "-"
    if all(isinstance(v, str | int | float | bool) for v in context.values()):
        return " ".join(f"{k}={v}" for k, v in context.items())
    return json.dumps(context, separators=(",", ":"), ensure_ascii=False)
