"""The ``ops-status`` command line: ``python -m ops_status <command>``.

Each command is a thin entry point over the same core the Function uses: it parses its
arguments, loads the settings it needs (an explicit flag beats the environment), gets
wired dependencies from ``bootstrap``, calls one core function (``ops_status.pipeline``,
``ops_status.listen``, ``ops_status.worker``) and maps the result to output and an exit
code. Results go to stdout, progress and errors to stderr; an error is one line, with a
traceback only under ``--debug``.

Exit codes (the same for every command)::

    0   succeeded: the operation succeeded, the watch was submitted, the listener ended
    1   the operation failed or was canceled, or the watch request was rejected
    2   timed out: the watch's deadline passed, or listen --timeout passed first
    3   check: the operation is still running
    4   check: the status could not be read (ARM answered 4xx/5xx, timed out, garbled)
    5   ops-status could not do its job: Service Bus, credential or unexpected error
    64  usage: bad arguments, an invalid watch request, a missing or malformed setting
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

from ops_status import __version__
from ops_status import settings as names
from ops_status.errors import (
    ConfigurationError,
    CredentialError,
    InvalidWatchRequestError,
    OpsStatusError,
    UsageError,
)
from ops_status.logs import quiet_sdk_loggers
from ops_status.observation import Observation, ReadFailure, ReadFailureKind, StatusRead
from ops_status.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ops_status.handler import StatusReader
    from ops_status.listen import ReceivedEvent
    from ops_status.pipeline import PollReport
    from ops_status.request import WatchRequest

__all__ = ["UsageError", "main"]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TIMED_OUT = 2
EXIT_RUNNING = 3
EXIT_UNREADABLE = 4
EXIT_ERROR = 5
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

# Settings a command does not use are filled with these, so ``load_settings`` (which
# requires them for the function) validates only what the command needs.
_UNUSED_ENTITY = "not-used-by-this-command"
_UNUSED_POLLS_QUEUE = "polls-queue-not-used-by-the-cli"
_UNUSED_NAMESPACE = "not-used-by-this-command.servicebus.windows.net"
_FLAGS = {
    names.INTAKE_QUEUE: "--queue",
    names.EVENTS_TOPIC: "--topic",
    names.SERVICE_BUS_NAMESPACE: "--namespace or --connection-string",
    names.ARM_ENDPOINT: "--arm-endpoint",
    names.CREDENTIAL: "--credential",
}
_EXIT_BY_STATUS = {"Succeeded": EXIT_OK, "TimedOut": EXIT_TIMED_OUT}
_EXIT_CODES = """\
exit codes:
  0   succeeded (operation succeeded, watch submitted, listener done)
  1   operation failed or canceled, or watch request rejected
  2   timed out (watch deadline passed, or listen --timeout passed first)
  3   check only: still running
  4   check only: status could not be read
  5   Service Bus, credential or unexpected error
  64  bad arguments, invalid watch request, missing or malformed setting
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code.

    Example::

        python -m ops_status submit --status-url "$STATUS_URL" --correlation-id run-42
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the CLI's contract: one line, no traceback (unless --debug)
        if args.debug:
            raise
        usage = isinstance(exc, (UsageError, ConfigurationError, InvalidWatchRequestError))
        text = str(exc) if isinstance(exc, OpsStatusError) else f"unexpected {exc!r}"
        hint = "" if usage else " (--debug shows the traceback)"
        _say(f"error: {' '.join(text.split())}{hint}")
        return EXIT_USAGE if usage else EXIT_ERROR


# -- the commands ---------------------------------------------------------------------


def _submit(args: argparse.Namespace) -> int:
    from ops_status.pipeline import initial_watch_message, prepare_watch, submit_watch

    sending = not args.dry_run
    settings = _settings(args, queue=sending, service_bus=sending)
    request = prepare_watch(_watch_body(args), settings)
    if request.correlation_id is None:
        _say(
            "warning: no --correlation-id: subscribers cannot pick out this run's event, and "
            "a re-run submitting the same operation within the duplicate-detection window "
            "is dropped as a duplicate"
        )
    if sending:
        from ops_status.bootstrap import create_service_bus_client
        from ops_status.servicebus import ServiceBusOutputClient

        credential = None if settings.service_bus_namespace is None else _credential(settings)
        outputs = ServiceBusOutputClient(
            create_service_bus_client(settings, credential),
            polls_queue=settings.polls_queue,
            topic=settings.events_topic,
            intake_queue=settings.intake_queue,
        )
        with _closed_after(outputs):
            message = submit_watch(request, outputs)
    else:
        message = initial_watch_message(request)
    if args.json:
        _emit(
            json.dumps(
                {
                    "messageId": message.message_id,
                    "queue": settings.intake_queue if sending else None,
                    "sent": sending,
                    "body": json.loads(message.body),
                }
            )
        )
    else:
        _emit(message.message_id)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from ops_status.pipeline import prepare_watch

    settings = _settings(args)
    request = prepare_watch(_watch_body(args), settings)
    with _closed_after(_status_reader(settings)) as reader:
        observation = reader.get_operation_status(request)
    outcome, code = _check_outcome(observation)
    document = _observation_document(observation, outcome)
    document["statusUrl"] = settings.arm_endpoint + request.target.status_path
    if args.json:
        _emit(json.dumps(document))
    else:
        _emit(_observation_line(observation, outcome))
        _emit_error_payload(document.get("error"))
    return code


def _watch(args: argparse.Namespace) -> int:
    from ops_status.clock import utcnow
    from ops_status.events import build_terminal_event
    from ops_status.pipeline import follow_operation, prepare_watch

    settings = _settings(args)
    request = prepare_watch(_watch_body(args), settings)
    progress = _Progress(sys.stderr, live=sys.stderr.isatty())
    with _closed_after(_status_reader(settings)) as reader, closing(progress):
        finish = follow_operation(
            request, reader, settings, sleep=progress.sleep, on_poll=progress.update
        )
    event = build_terminal_event(finish, arm_endpoint=settings.arm_endpoint, now=utcnow())
    document = json.loads(event.body)
    if args.json:
        _emit(json.dumps(document))
    else:
        _emit(_event_line(document))
        _emit_error_payload(document["data"].get("error"))
    return _EXIT_BY_STATUS.get(finish.outcome.status.value, EXIT_FAILED)


def _listen(args: argparse.Namespace) -> int:
    from ops_status.bootstrap import create_service_bus_client
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
            _print_event(event, as_json=args.json)

    settings = _settings(args, topic=True, service_bus=True)
    client = create_service_bus_client(settings, None)
    mode = "receive and complete" if args.complete else "browse"
    _say(
        f"listening on {settings.events_topic}/{args.subscription_name} ({mode}) for "
        f"{until or 'any event'}" + (f", for at most {args.timeout:g}s" if args.timeout else "")
    )
    with client, open_subscription(client, settings.events_topic, args.subscription_name) as sub:
        source: EventSource = ConsumingSource(sub) if args.complete else BrowsingSource(sub)
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
        _say(f"error: no event for {until} within {args.timeout:g}s{others}")
        return EXIT_TIMED_OUT
    return _EXIT_BY_STATUS.get(result.matched.status or "", EXIT_FAILED)


def _worker(args: argparse.Namespace) -> int:
    from ops_status.bootstrap import create_service_bus_client, get_dependencies
    from ops_status.inbound import Queue
    from ops_status.settings import load_settings
    from ops_status.worker import Worker, run_worker

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    settings = load_settings()
    dependencies = get_dependencies(settings)
    client = create_service_bus_client(settings, dependencies.credential)
    worker = Worker(
        client,
        {Queue.INTAKE: settings.intake_queue, Queue.POLLS: settings.polls_queue},
        dependencies,
        concurrency=args.concurrency,
        max_lock_renewal=args.max_lock_renewal,
    )
    with client:
        stats = run_worker(worker)
    return EXIT_OK if stats.receive_errors == 0 or stats.completed > 0 else EXIT_FAILED


# -- settings and wiring --------------------------------------------------------------


def _settings(
    args: argparse.Namespace, *, queue: bool = False, topic: bool = False, service_bus: bool = False
) -> Settings:
    """The function's settings, overridden by flags, checked only where this command needs them.

    The CLI runs in pipelines and on laptops, not as a managed identity: unless
    OPS_STATUS_CREDENTIAL or --credential says otherwise it uses DefaultAzureCredential.
    """
    from ops_status.settings import load_settings

    environ = dict(os.environ)
    overrides: dict[str, str] = {}
    if not environ.get(names.CREDENTIAL, "").strip():
        overrides[names.CREDENTIAL] = "default"
    for setting, value in (
        (names.CREDENTIAL, args.credential),
        (names.ARM_ENDPOINT, getattr(args, "arm_endpoint", None)),
        (names.INTAKE_QUEUE, getattr(args, "queue", None)),
        (names.EVENTS_TOPIC, getattr(args, "topic", None)),
    ):
        if value is not None:
            overrides[setting] = value
    if service_bus:
        if args.namespace is not None:
            environ.pop(names.SERVICE_BUS_CONNECTION, None)
            overrides[names.SERVICE_BUS_NAMESPACE] = args.namespace
        if args.connection_string is not None:
            environ.pop(names.SERVICE_BUS_NAMESPACE, None)
            overrides[names.SERVICE_BUS_CONNECTION] = args.connection_string
    else:
        environ.pop(names.SERVICE_BUS_CONNECTION, None)
        overrides[names.SERVICE_BUS_NAMESPACE] = _UNUSED_NAMESPACE
    if not queue:
        overrides[names.INTAKE_QUEUE] = _UNUSED_ENTITY
    # No command sends to or reads the polls queue: only the app's identity may.
    overrides[names.POLLS_QUEUE] = _UNUSED_POLLS_QUEUE
    if not topic:
        overrides[names.EVENTS_TOPIC] = _UNUSED_ENTITY
    try:
        return load_settings(environ, **overrides)
    except ConfigurationError as exc:
        flag = _FLAGS.get(exc.setting)
        if flag is None:
            raise
        raise ConfigurationError(exc.setting, f"{exc.problem} (set it, or pass {flag})") from None


class _NoOutputs:
    """``check`` and ``watch`` send nothing; this stands in so no Service Bus client is built."""

    def schedule_poll(self, message: object, enqueue_at: datetime) -> None:
        raise AssertionError("check and watch send nothing")

    def send_event(self, message: object) -> None:
        raise AssertionError("check and watch send nothing")

    def close(self) -> None:
        return None


def _status_reader(settings: Settings) -> StatusReader:
    """The ArmClient, wired by ``bootstrap`` exactly as the function's, except that no
    token is an error at once: the function retries it for a grace period, but a pipeline
    step with a wrong login should fail now, not in 30 minutes."""
    from ops_status.bootstrap import build_dependencies

    return _TokenFailureIsFatal(build_dependencies(settings, outputs=_NoOutputs()).status_reader)


class _TokenFailureIsFatal:
    """A status reader that raises ``CredentialError`` (exit 5) when no token could be had."""

    def __init__(self, inner: StatusReader) -> None:
        self._inner = inner

    def get_operation_status(self, request: WatchRequest) -> Observation:
        observation = self._inner.get_operation_status(request)
        if (
            isinstance(observation, ReadFailure)
            and observation.kind is ReadFailureKind.TOKEN_UNAVAILABLE
        ):
            raise CredentialError(observation.detail)
        return observation

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


def _credential(settings: Settings) -> TokenCredential:
    from ops_status.credential import create_credential

    return create_credential(settings)


@contextmanager
def _closed_after(resource: _T) -> Iterator[_T]:
    """Yield ``resource`` and close it afterwards, if it can be closed (adapters can)."""
    try:
        yield resource
    finally:
        close = getattr(resource, "close", None)
        if callable(close):
            close()


# -- the watch request from flags -----------------------------------------------------


def _watch_body(args: argparse.Namespace) -> dict[str, Any]:
    """The watch request the flags describe. Content is validated by ``prepare_watch``."""
    parts = {
        "subscriptionId": args.subscription,
        "location": args.location,
        "operationId": args.operation_id,
    }
    given = {key: value for key, value in parts.items() if value is not None}
    if args.status_url is not None and given:
        raise UsageError("give --status-url or --subscription/--location/--operation-id, not both")
    if args.status_url is None and len(given) < len(parts):
        flags = {"subscriptionId": "--subscription", "location": "--location"}
        missing = [flags.get(key, "--operation-id") for key in parts if key not in given]
        raise UsageError(
            "name the operation with --status-url, or with --subscription, --location and "
            f"--operation-id (missing: {', '.join(missing)})"
        )
    body: dict[str, Any] = {"statusUrl": args.status_url} if args.status_url else given
    if args.api_version is not None:
        if args.status_url is not None:
            raise UsageError("--api-version goes with --operation-id; a --status-url has its own")
        body["apiVersion"] = args.api_version
    if args.correlation_id is not None:
        body["correlationId"] = args.correlation_id
    if getattr(args, "timeout", None) is not None:
        body["timeout"] = _number(args.timeout)
    if getattr(args, "deadline", None) is not None:
        body["deadline"] = args.deadline
    context = _context(getattr(args, "context", None), getattr(args, "context_json", None))
    if context is not None:
        body["context"] = context
    return body


def _number(text: str) -> int | float | str:
    """A plain decimal as a JSON number; anything else stays text for the validator to judge."""
    stripped = text.strip()
    if not stripped.replace(".", "", 1).isdigit() or not stripped.isascii():
        return text
    value = float(stripped)
    return int(value) if value.is_integer() and "." not in stripped else value


def _context(pairs: list[str] | None, document: str | None) -> dict[str, Any] | None:
    """``--context-json`` (typed values) plus ``--context KEY=VALUE`` (always strings)."""
    context: dict[str, Any] = {}
    if document is not None:
        try:
            value = json.loads(document)
        except ValueError as exc:
            raise UsageError(f"--context-json is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise UsageError("--context-json must be a JSON object")
        context.update(value)
    for pair in pairs or []:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise UsageError(f"--context takes KEY=VALUE, got {pair!r}")
        if key in context:
            raise UsageError(f"context key {key!r} is given twice")
        context[key] = value
    return context or None


# -- output ---------------------------------------------------------------------------


def _emit(text: str) -> None:
    """A result line on stdout."""
    print(text, flush=True)  # noqa: T201 - CLI output


def _say(text: str) -> None:
    """A message line on stderr."""
    print(f"ops-status: {text}", file=sys.stderr, flush=True)  # noqa: T201 - CLI output


def _emit_error_payload(error: Any) -> None:
    if error:
        _emit("error: " + json.dumps(error, indent=2, ensure_ascii=False))


def _check_outcome(observation: Observation) -> tuple[str, int]:
    if isinstance(observation, ReadFailure):
        return "Unreadable", EXIT_UNREADABLE
    state = observation.state
    if state is None:
        return "Running", EXIT_RUNNING
    return state.value, EXIT_OK if state.value == "Succeeded" else EXIT_FAILED


def _observation_document(observation: Observation, outcome: str) -> dict[str, Any]:
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


def _observation_line(observation: Observation, outcome: str) -> str:
    if isinstance(observation, ReadFailure):
        return f"{outcome}: {_status_text(observation)}"
    return _status_text(observation)


def _status_text(observation: Observation) -> str:
    if isinstance(observation, StatusRead):
        percent = observation.percent_complete
        return observation.status + (f" {percent:g}%" if percent is not None else "")
    if observation.kind is ReadFailureKind.THROTTLED:
        return f"throttled ({observation.detail})"
    return f"status not readable ({observation.detail})"


def _event_line(event: Mapping[str, Any]) -> str:
    """One line per event: time, status, then the fields a reader scans for."""
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
    ]
    text = " ".join(f"{name}={value}" for name, value in fields if value is not None)
    return f"{event.get('time', '-')} {data.get('status', event.get('type', '?'))} {text}".rstrip()


def _print_event(event: ReceivedEvent, *, as_json: bool) -> None:
    if event.event is None:
        _say(f"warning: message {event.message_id} is not an ops-status event (not JSON)")
        return
    if as_json:
        _emit(json.dumps(event.event, ensure_ascii=False))
        return
    _emit(_event_line(event.event))
    _emit_error_payload(event.data.get("error"))


class _Progress:
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
        self._status = _status_text(report.observation)
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
        next_check = f"next check in {_duration(self._due - now)}" if self._due else "done"
        return f"[{_duration(now - self._start)}] {self._status}  polls={self._polls}  {next_check}"

    def _draw(self) -> None:
        line = self._line()
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = max(self._width, len(line))


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


# -- the parser -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ops-status",
        description=textwrap.fill(
            "Watch Azure Resource Manager long-running operations through Service Bus: "
            "submit a watch from a pipeline, check or watch an operation directly, listen "
            "for the events, or run the watcher itself.",
            88,
        ),
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ops-status {__version__}")
    _add_common(parser)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _add_submit(commands)
    _add_check(commands)
    _add_watch(commands)
    _add_listen(commands)
    _add_worker(commands)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=argparse.SUPPRESS,
        help="log level on stderr (default: ERROR; INFO for worker)",
    )


def _command(
    commands: Any, name: str, *, summary: str, description: str, example: str, exit_codes: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        # The raw formatter keeps the example's line breaks; the description is wrapped here.
        description=textwrap.fill(description, 88),
        epilog=f"example:\n{example}\n\n{exit_codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser)
    return parser


def _add_operation(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "the operation (--status-url, or --subscription, --location and --operation-id)"
    )
    group.add_argument(
        "--status-url",
        metavar="URL",
        help="the Azure-AsyncOperation header value the operation's start returned",
    )
    group.add_argument("--subscription", metavar="GUID", help="Azure subscription id")
    group.add_argument("--location", metavar="REGION", help="region, e.g. westus or 'West US'")
    group.add_argument("--operation-id", metavar="ID", help="Microsoft.Cache operation id")
    group.add_argument(
        "--api-version", metavar="VERSION", help="with --operation-id (default: 2025-07-01)"
    )
    group.add_argument(
        "--correlation-id",
        metavar="ID",
        help="your run's id (up to 128 printable characters), echoed in the event and sent "
        "to ARM; e.g. $GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT",
    )


def _add_watch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the watch")
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        help="stop watching after this long (default: OPS_STATUS_DEFAULT_TIMEOUT, 7200)",
    )
    group.add_argument(
        "--deadline", metavar="RFC3339", help="stop watching at this time; the earlier wins"
    )
    group.add_argument(
        "--context",
        metavar="KEY=VALUE",
        action="append",
        help="add KEY to the context echoed in the event; the value stays a string (repeatable)",
    )
    group.add_argument(
        "--context-json",
        metavar="JSON",
        help="context as a JSON object, for values that are not strings",
    )


def _add_arm(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Azure (default: the function's settings in the environment)")
    group.add_argument(
        "--arm-endpoint", metavar="URL", help="ARM endpoint (OPS_STATUS_ARM_ENDPOINT)"
    )
    _add_credential(group)


def _add_credential(group: Any) -> None:
    group.add_argument(
        "--credential",
        choices=["default", "managedidentity"],
        help="OPS_STATUS_CREDENTIAL; unlike the function, the CLI defaults to 'default' "
        "(DefaultAzureCredential: environment, workload identity, managed identity, Azure CLI)",
    )


def _add_service_bus(parser: argparse.ArgumentParser) -> Any:
    group = parser.add_argument_group(
        "Service Bus (default: the function's settings in the environment)"
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--namespace",
        metavar="FQDN",
        help="<namespace>.servicebus.windows.net, with an Azure credential "
        "(ServiceBusConnection__fullyQualifiedNamespace)",
    )
    where.add_argument(
        "--connection-string",
        metavar="STRING",
        help="a connection string instead (ServiceBusConnection; prefer the variable: "
        "arguments show in process lists)",
    )
    return group


def _add_output(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def _add_submit(commands: Any) -> None:
    parser = _command(
        commands,
        "submit",
        summary="put a watch request on the intake queue (what a pipeline step does)",
        description=(
            "Validate a watch request exactly as the function will (bad input fails here, "
            "exit code 64, with every problem listed) and put it on the intake queue. Prints "
            "the MessageId: the same watch submitted twice gets the same id, so the intake "
            "queue's duplicate detection drops a retried step's copy (within its window, 1 h "
            "in the template). Without --correlation-id a warning is printed: a re-run of the "
            "same operation within the window is dropped as a duplicate, and subscribers "
            "cannot filter for your run."
        ),
        example=(
            '  python -m ops_status submit --status-url "$STATUS_URL" \\\n'
            '      --correlation-id "$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT" --timeout 3600 \\\n'
            '      --context pipeline=deploy-cache --context "sha=$GITHUB_SHA"'
        ),
        exit_codes="exit codes: 0 submitted, 5 send failed, 64 invalid request or settings",
    )
    _add_operation(parser)
    _add_watch_options(parser)
    sb = _add_service_bus(parser)
    sb.add_argument("--queue", metavar="NAME", help="the intake queue (OPS_STATUS_INTAKE_QUEUE)")
    _add_arm(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and print, send nothing (no Service Bus)"
    )
    _add_output(parser, "print {messageId, queue, sent, body} as JSON")
    parser.set_defaults(command=_submit, default_log_level="ERROR", sdk_quiet=True)


def _add_check(commands: Any) -> None:
    parser = _command(
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
            "  4 status not readable (HTTP 4xx/5xx, timeout, garbled answer), 5 credential "
            "error, 64 usage"
        ),
    )
    _add_operation(parser)
    _add_arm(parser)
    _add_output(
        parser,
        "print {outcome, status, percentComplete, error, readFailure, ...} as JSON",
    )
    parser.set_defaults(command=_check, default_log_level="ERROR", sdk_quiet=True)


def _add_watch(commands: Any) -> None:
    parser = _command(
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
    _add_operation(parser)
    _add_watch_options(parser)
    _add_arm(parser)
    _add_output(parser, "print the terminal CloudEvent as JSON")
    parser.set_defaults(command=_watch, default_log_level="ERROR", sdk_quiet=True)


def _add_listen(commands: Any) -> None:
    parser = _command(
        commands,
        "listen",
        summary="print events from a topic subscription, or wait for one (a pipeline gate)",
        description=(
            "Read events from a subscription of the events topic and print them. With "
            "--operation-id and/or --correlation-id, wait for that watch's event and exit "
            "with its outcome. By default listen browses (peeks): it never removes, abandons or "
            "dead-letters an event, so it cannot steal other pipelines' events from a shared "
            "subscription, and a re-run finds the same event again. --complete instead "
            "receives and completes every event, for a subscription this reader owns alone."
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
    sb = _add_service_bus(parser)
    sb.add_argument("--topic", metavar="NAME", help="the events topic (OPS_STATUS_EVENTS_TOPIC)")
    sb.add_argument(
        "--subscription-name", metavar="NAME", required=True, help="the topic subscription"
    )
    sb.add_argument(
        "--complete",
        action="store_true",
        help="receive and complete events instead of browsing (consumes them; not with a filter)",
    )
    _add_credential(sb)
    _add_output(parser, "one CloudEvent per line (JSON Lines)")
    parser.set_defaults(command=_listen, default_log_level="ERROR", sdk_quiet=True)


def _add_worker(commands: Any) -> None:
    parser = _command(
        commands,
        "worker",
        summary="run the watcher as a long-running queue consumer (instead of Azure Functions)",
        description=(
            "Receive submissions from OPS_STATUS_INTAKE_QUEUE and follow-ups from "
            "OPS_STATUS_POLLS_QUEUE and handle them exactly as the "
            "function app does: PeekLock, complete on success, abandon on error, locks renewed "
            "while a handler runs, graceful stop on SIGTERM/SIGINT. Reads the same settings "
            "as the function app from the environment (credential default: managedidentity)."
        ),
        example="  python -m ops_status worker --concurrency 8",
        exit_codes="exit codes: 0 stopped, 1 the queues could never be read, 64 bad settings",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="messages handled at once, spread over the intake and polls queues (default: 16)",
    )
    parser.add_argument(
        "--max-lock-renewal",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="renew a message's lock for at most this long (default: 300, as host.json)",
    )
    parser.set_defaults(command=_worker, default_log_level="INFO", sdk_quiet=False)


def _configure_logging(args: argparse.Namespace) -> None:
    args.debug = getattr(args, "debug", False)
    level_name = getattr(args, "log_level", None) or ("DEBUG" if args.debug else None)
    level = getattr(logging, level_name or args.default_log_level)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # The SDKs are chatty (every AMQP link and HTTP request, every retried error). The
    # worker keeps their warnings; the pipeline commands report failures themselves, in
    # one line, so the SDKs speak only at DEBUG.
    floor = logging.CRITICAL if args.sdk_quiet and level > logging.DEBUG else logging.WARNING
    quiet_sdk_loggers(max(floor, level))
