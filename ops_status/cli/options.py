"""The command line's shared declarations: the parser, the option groups several
commands take, and the watch request those options describe.

Flags are never abbreviated (``allow_abbrev=False``: ``--subscription`` must not silently
mean ``--subscription-name``). A usage error prints the command's usage on one line, the
problem, and a hint (the closest flag or command), and exits 64.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import textwrap
from typing import TYPE_CHECKING, Any, NoReturn

from ops_status.cli.output import EXIT_USAGE
from ops_status.errors import InvalidWatchRequestError, UsageError

if TYPE_CHECKING:
    from ops_status.request import WatchRequest
    from ops_status.settings import ArmSettings

__all__ = [
    "CommandParser",
    "add_arm",
    "add_credential",
    "add_operation",
    "add_output",
    "add_service_bus",
    "add_watch_options",
    "declare_command",
    "watch_body",
    "watch_request",
]

# The flag that sets each watch-request field, so a validation problem names what the
# user typed (``--subscription must be a GUID``), not only the JSON field.
_FLAG_BY_FIELD = {
    "statusUrl": "--status-url",
    "subscriptionId": "--subscription",
    "location": "--location",
    "operationId": "--operation-id",
    "apiVersion": "--api-version",
    "correlationId": "--correlation-id",
    "timeout": "--timeout",
    "deadline": "--deadline",
    "context": "--context/--context-json",
}


class CommandParser(argparse.ArgumentParser):
    """argparse with no abbreviations, exit code 64, and one-line usage errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.words: list[str] = []
        """The command line as typed, for hints (``main`` sets it)."""

    def error(self, message: str) -> NoReturn:
        hint = self._hint(message)
        sys.stderr.write(f"usage: {self.short_usage()}\n{self.prog}: error: {message}\n")
        if hint:
            sys.stderr.write(f"{self.prog}: hint: {hint}\n")
        self.exit(EXIT_USAGE)

    def short_usage(self) -> str:
        """``ops-status listen --subscription-name NAME [options]``: required flags only."""
        words = [self.prog]
        for action in self._actions:
            if action.required and action.option_strings:
                metavar = action.metavar or action.dest.upper()
                words.append(f"{action.option_strings[0]} {metavar}")
            elif not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                words.append(str(action.metavar or action.dest))
        if any(isinstance(action, argparse._SubParsersAction) for action in self._actions):
            words.append("COMMAND")
        words.append("[options]")
        return " ".join(words) + f"   (see: {self.prog} --help)"

    def _hint(self, message: str) -> str | None:
        """The closest flag to an unknown one, or the closest command to a misspelt one."""
        if message.startswith("argument COMMAND: invalid choice:"):
            choice = message.split("'")[1] if "'" in message else ""
            commands = [
                name
                for action in self._actions
                if isinstance(action, argparse._SubParsersAction)
                for name in action.choices
            ]
            close = difflib.get_close_matches(choice, commands, n=1)
            return f"did you mean {self.prog} {close[0]}?" if close else None
        # An unknown flag is reported as unknown, or (when it was meant for a required
        # one) as that one missing: either way the hint names the flag it resembles.
        known = [flag for action in self._actions for flag in action.option_strings]
        for word in self.words:
            flag = word.split("=", 1)[0]
            if not flag.startswith("--") or flag in known:
                continue
            # A shortened flag names the one it is short for, when there is exactly one.
            close = [k for k in known if k.startswith(flag)]
            if len(close) != 1:
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            if close:
                return f"{flag} is not a flag of {self.prog}; did you mean {close[0]}?"
        if message.startswith("unrecognized arguments:"):
            return f"{self.prog} --help lists every flag"
        return None


def declare_command(
    commands: Any, name: str, *, summary: str, description: str, example: str, exit_codes: str
) -> CommandParser:
    """A subcommand's parser, with its help laid out the same way for every command."""
    parser: CommandParser = commands.add_parser(
        name,
        help=summary,
        # The raw formatter keeps the example's line breaks; the description is wrapped here.
        description=textwrap.fill(description, 88),
        epilog=f"example:\n{example}\n\n{exit_codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(parser)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--debug`` and ``--log-level``, accepted before or after the command."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also print the traceback of an error (the exit code stays the same)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=argparse.SUPPRESS,
        help="log level on stderr (default: ERROR; INFO for worker)",
    )


def add_operation(parser: argparse.ArgumentParser) -> None:
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


def add_watch_options(parser: argparse.ArgumentParser) -> None:
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


def add_arm(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Azure (default: the function's settings in the environment)")
    group.add_argument(
        "--arm-endpoint", metavar="URL", help="ARM endpoint (OPS_STATUS_ARM_ENDPOINT)"
    )
    add_credential(group)


def add_credential(group: Any) -> None:
    group.add_argument(
        "--credential",
        choices=["default", "managedidentity"],
        help="OPS_STATUS_CREDENTIAL; unlike the function, the CLI defaults to 'default' "
        "(DefaultAzureCredential: environment, workload identity, managed identity, Azure CLI)",
    )


def add_service_bus(parser: argparse.ArgumentParser) -> Any:
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


def add_output(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


# -- the watch request the flags describe ---------------------------------------------


def watch_body(args: argparse.Namespace) -> dict[str, Any]:
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
        missing = [_FLAG_BY_FIELD[key] for key in parts if key not in given]
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


def watch_request(args: argparse.Namespace, settings: ArmSettings) -> WatchRequest:
    """The flags' watch request, validated exactly as the function will validate it.

    Raises ``InvalidWatchRequestError`` listing every problem, each naming its flag.
    """
    from ops_status.pipeline import prepare_watch

    try:
        return prepare_watch(watch_body(args), settings)
    except InvalidWatchRequestError as exc:
        raise _with_flag_names(exc) from None


def _with_flag_names(error: InvalidWatchRequestError) -> InvalidWatchRequestError:
    """The same problems, each naming the flag that set the field (``--subscription must be
    a GUID``), for a request built from flags."""
    problems = []
    for problem in error.errors:
        field, space, rest = problem.partition(" ")
        flag = _FLAG_BY_FIELD.get(field)
        problems.append(f"{flag} {rest}" if flag and space else problem)
    return InvalidWatchRequestError(problems)


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
