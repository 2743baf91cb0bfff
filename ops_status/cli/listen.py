"""``ops-status listen``: print events from a topic subscription, or wait for one watch's
event and exit with its outcome (a pipeline gate). Browses by default: it never takes an
event another reader of a shared subscription may need."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ops_status import settings as names
from ops_status.cli import options, wiring
from ops_status.cli.output import (
    EXIT_BY_STATUS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    print_event,
    say,
)
from ops_status.errors import UsageError

if TYPE_CHECKING:
    from ops_status.listen import ReceivedEvent

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    parser = options.declare_command(
        commands,
        "listen",
        summary="print events from a topic subscription, or wait for one (a pipeline gate)",
        description=(
            "Read events from a subscription of the events topic and print them. With "
            "--operation-id, --correlation-id and/or --submission-id, wait for that watch's "
            "event and exit with its outcome. By default listen browses (peeks): it never "
            "removes, abandons or dead-letters an event, so it cannot steal other pipelines' "
            "events from a shared subscription, and a re-run finds the same event again. "
            "--complete instead receives and completes every event, for a subscription this "
            "reader owns alone."
        ),
        example=(
            "  python -m ops_status listen --subscription-name "
            '"gate-$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT" \\\n'
            '      --correlation-id "$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT" --timeout 3600'
        ),
        exit_codes=(
            "exit codes (waiting for an event): 0 succeeded, 1 failed, canceled or rejected,\n"
            "  2 timed out or --timeout passed first; without a filter 0 when done;\n"
            "  5 Service Bus error, 64 usage"
        ),
    )
    wait = parser.add_argument_group("what to wait for (default: print every event)")
    wait.add_argument("--operation-id", metavar="ID", help="the event of this operation")
    wait.add_argument("--correlation-id", metavar="ID", help="the event of this correlation id")
    wait.add_argument(
        "--submission-id",
        metavar="ID",
        help="the event of this submission (the MessageId submit printed)",
    )
    wait.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop after this long (default: never)"
    )
    wait.add_argument(
        "--max-events", type=int, metavar="N", help="without a filter: stop after N events"
    )
    sb = options.add_service_bus(parser)
    sb.add_argument("--topic", metavar="NAME", help="the events topic (OPS_STATUS_EVENTS_TOPIC)")
    sb.add_argument(
        "--subscription-name", metavar="NAME", required=True, help="the topic subscription"
    )
    sb.add_argument(
        "--complete",
        action="store_true",
        help="receive and complete events instead of browsing (consumes them; not with a filter)",
    )
    options.add_credential(sb)
    options.add_output(parser, "one CloudEvent per line (JSON Lines)")
    parser.set_defaults(command=run, default_log_level="ERROR", sdk_quiet=True)


def run(args: argparse.Namespace) -> int:
    from ops_status.listen import (
        BrowsingSource,
        ConsumingSource,
        EventFilter,
        EventSource,
        listen_for_events,
        open_subscription,
    )

    until = None
    if any(v is not None for v in (args.operation_id, args.correlation_id, args.submission_id)):
        until = EventFilter(args.operation_id, args.correlation_id, args.submission_id)
        if args.complete:
            raise UsageError(
                "--complete takes every event it reads, so it cannot wait for one event: "
                "leave --complete out (browse), or filter on the subscription's rule instead"
            )
    if args.max_events is not None and args.max_events < 1:
        raise UsageError("--max-events must be at least 1")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")

    def show(event: ReceivedEvent, matched: bool) -> None:
        # A gate shows only its own event: other pipelines' events are not its business.
        if matched or until is None:
            print_event(event, as_json=args.json)

    topic = wiring.entity_name(args, names.EVENTS_TOPIC)
    client = wiring.service_bus_client(args)
    mode = "receive and complete" if args.complete else "browse"
    say(
        f"listening on {topic}/{args.subscription_name} ({mode}) for "
        f"{until or 'any event'}" + (f", for at most {args.timeout:g}s" if args.timeout else "")
    )
    with client, open_subscription(client, topic, args.subscription_name) as subscription:
        source: EventSource = (
            ConsumingSource(subscription) if args.complete else BrowsingSource(subscription)
        )
        result = listen_for_events(
            source,
            on_event=show,
            until=until,
            timeout=args.timeout,
            max_events=args.max_events,
        )
    if until is None:
        return EXIT_OK
    if result.matched is None:
        others = f" ({result.seen} other events seen)" if result.seen else ""
        say(f"error: no event for {until} within {args.timeout:g}s{others}")
        return EXIT_TIMED_OUT
    return EXIT_BY_STATUS.get(result.matched.status or "", EXIT_FAILED)
