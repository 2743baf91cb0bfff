"""``ops-status submit``: validate a watch request as the function will, and send it to
the intake queue (what a pipeline step does).

Warns, without failing, when the watch is unlikely to be what the user meant: no
correlation id, a deadline already past, or a MessageId this machine already sent within
the last hour (the intake queue drops such a copy as a duplicate; the earlier
submission's event answers both).

Starts the watch's trace: a ``ops-status submit`` span, a child of the caller's trace
when ``TRACEPARENT`` (and ``TRACESTATE``) name a valid one, as OpenTelemetry's
environment-variable carriers and CI tooling pass it to a child process (an invalid one
is ignored: a new trace starts); the message carries its ``send`` span's context.
``--json`` prints the trace id.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops_status import settings as names
from ops_status.cli import options, wiring
from ops_status.cli.output import EXIT_OK, emit, say
from ops_status.errors import ConfigurationError
from ops_status.settings import ServiceBusSettings

if TYPE_CHECKING:
    from ops_status.events import OutboundMessage
    from ops_status.request import WatchRequest

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)

# The template's duplicate-detection window on the intake queue. The CLI cannot read the
# real queue's window (that needs Manage rights a pipeline does not have).
DUPLICATE_WINDOW = timedelta(hours=1)
#: Where ``submit`` remembers what it sent in the last hour (JSON: namespace/queue/id →
#: time); empty turns the record and its warning off. Default: the user's cache folder.
HISTORY_SETTING = "OPS_STATUS_SUBMIT_HISTORY"


def add_parser(commands: Any) -> None:
    parser = options.declare_command(
        commands,
        "submit",
        summary="put a watch request on the intake queue (what a pipeline step does)",
        description=(
            "Validate a watch request exactly as the function will (bad input fails here, "
            "exit code 64, with every problem listed) and put it on the intake queue. Prints "
            "the MessageId: the same watch submitted twice gets the same id, so the intake "
            "queue's duplicate detection drops a retried step's copy (within its window, 1 h "
            "in the template). Warns when there is no --correlation-id (a re-run of the "
            "same operation within the window is dropped as a duplicate, and subscribers "
            "cannot filter for your run), when --deadline is already past, and when this "
            "machine already sent the same MessageId within the hour."
        ),
        example=(
            '  python -m ops_status submit --status-url "$STATUS_URL" \\\n'
            '      --correlation-id "$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT" --timeout 3600 \\\n'
            '      --context pipeline=deploy-cache --context "sha=$GITHUB_SHA"'
        ),
        exit_codes="exit codes: 0 submitted, 5 send failed, 64 invalid request or settings",
    )
    options.add_operation(parser)
    options.add_watch_options(parser)
    sb = options.add_service_bus(parser)
    sb.add_argument("--queue", metavar="NAME", help="the intake queue (OPS_STATUS_INTAKE_QUEUE)")
    options.add_arm(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and print, send nothing (no Service Bus)"
    )
    options.add_output(parser, "print {messageId, queue, sent, traceId, traceparent, body} as JSON")
    parser.set_defaults(command=run, default_log_level="ERROR", sdk_quiet=True)


def run(args: argparse.Namespace) -> int:
    from ops_status import tracing
    from ops_status.clock import utcnow
    from ops_status.pipeline import initial_watch_message

    caller = tracing.environment_trace_context(os.environ)
    with tracing.started_span("ops-status submit", parent=caller) as span:
        sending = not args.dry_run
        # Everything is validated before anything is sent.
        arm = wiring.arm_settings(args)
        queue = wiring.entity_name(args, names.INTAKE_QUEUE) if sending else _queue_if_named(args)
        request = options.watch_request(args, arm)
        tracing.set_attributes(
            span,
            {
                "ops_status.operation_id": request.target.operation_id,
                "ops_status.subscription_id": request.target.subscription_id,
                "messaging.message.conversation_id": request.correlation_id,
            },
        )
        now = utcnow()
        _warn_about_request(request, now)
        if sending:
            assert queue is not None
            message = _send(args, queue, request, now)
        else:
            message = initial_watch_message(request, trace=tracing.trace_context_of(span))
    if args.json:
        trace = message.trace
        document = {
            "messageId": message.message_id,
            "queue": queue,
            "sent": sending,
            "traceId": trace.trace_id if trace else None,
            "traceparent": trace.traceparent if trace else None,
            "body": json.loads(message.body),
        }
        emit(json.dumps(document))
    else:
        emit(message.message_id)
    return EXIT_OK


def _queue_if_named(args: argparse.Namespace) -> str | None:
    """For ``--dry-run``: the intake queue it would be sent to, when one is named."""
    try:
        return wiring.entity_name(args, names.INTAKE_QUEUE)
    except ConfigurationError:
        return None


def _warn_about_request(request: WatchRequest, now: datetime) -> None:
    if request.correlation_id is None:
        say(
            "warning: no --correlation-id: subscribers cannot pick out this run's event, and "
            "a re-run submitting the same operation within the duplicate-detection window "
            "is dropped as a duplicate"
        )
    if request.deadline is not None and request.deadline <= now:
        say(
            f"warning: --deadline {request.deadline.isoformat()} is already past: the watch "
            "reads the operation once and ends with what that read finds (TimedOut if it "
            "is still running)"
        )


def _send(
    args: argparse.Namespace, queue: str, request: WatchRequest, now: datetime
) -> OutboundMessage:
    """Send the submission, warning first when this machine sent the same one lately;
    returns what was sent."""
    from ops_status import tracing
    from ops_status.pipeline import initial_watch_message, submit_watch
    from ops_status.servicebus import ServiceBusIntakeClient

    message = initial_watch_message(request)
    service_bus = wiring.service_bus_settings(args)
    # Duplicate detection is per queue: the same MessageId on another namespace is new.
    sent_key = f"{_namespace_of(service_bus)}/{queue}/{message.message_id}"
    history = _History.load()
    earlier = history.sent_at(sent_key, now)
    if earlier is not None:
        minutes = max(int((now - earlier).total_seconds() // 60), 0)
        say(
            f"warning: MessageId {message.message_id} was sent to {queue} from this "
            f"machine {minutes} min ago: within the queue's duplicate-detection window "
            "(1 h in the template) this copy is dropped, and the earlier submission's "
            f"event answers both (listen --submission-id {message.message_id}). For a "
            "new watch, pass another --correlation-id (e.g. with the attempt number)."
        )
    client = wiring.service_bus_client(args)
    server = tracing.service_bus_address(
        service_bus.service_bus_namespace, service_bus.service_bus_connection_string
    )
    with (
        wiring.closed_after(ServiceBusIntakeClient(client, intake_queue=queue)) as intake,
        tracing.producing(queue, server=server) as outgoing,
    ):
        sent = submit_watch(request, intake, trace=outgoing.context)
        outgoing.describe(
            message_id=sent.message_id,
            conversation_id=sent.correlation_id,
            body_size=len(sent.body),
        )
    history.record(sent_key, now)
    return sent


class _History:
    """What this user sent in the last hour, in a small JSON file. The CLI cannot ask the
    queue which MessageIds it holds (duplicate detection is silent), so this is what it
    can know: a step retried on the same machine (the common case) is warned about.

    Best effort: a file that cannot be read or written costs only the warning.
    """

    def __init__(self, path: Path | None, sent: dict[str, str]) -> None:
        self._path = path
        self._sent = sent

    @classmethod
    def load(cls) -> _History:
        path = _history_path()
        if path is None:
            return cls(None, {})
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError) as exc:
            logger.debug("submit history %s unreadable: %s", path, exc)
            return cls(path, {})
        sent = {
            str(key): value
            for key, value in (document.items() if isinstance(document, dict) else [])
            if isinstance(value, str)
        }
        return cls(path, sent)

    def sent_at(self, key: str, now: datetime) -> datetime | None:
        text = self._sent.get(key)
        if text is None:
            return None
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
        return when if timedelta(0) <= now - when < DUPLICATE_WINDOW else None

    def record(self, key: str, now: datetime) -> None:
        if self._path is None:
            return
        kept = {k: value for k, value in self._sent.items() if self.sent_at(k, now)}
        kept[key] = now.isoformat()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(json.dumps(kept), encoding="utf-8")
            temporary.replace(self._path)
        except OSError as exc:
            logger.debug("submit history %s not written: %s", self._path, exc)


def _namespace_of(settings: ServiceBusSettings) -> str:
    if settings.service_bus_namespace is not None:
        return settings.service_bus_namespace.lower()
    assert settings.service_bus_connection_string is not None
    fields = dict(
        part.split("=", 1)
        for part in settings.service_bus_connection_string.split(";")
        if "=" in part
    )
    return fields.get("Endpoint", "").removeprefix("sb://").rstrip("/").lower()


def _history_path() -> Path | None:
    """``OPS_STATUS_SUBMIT_HISTORY`` (empty turns it off), else the user's cache folder."""
    configured = os.environ.get(HISTORY_SETTING)
    if configured is not None:
        return Path(configured) if configured.strip() else None
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "ops-status" / "submitted.json"
