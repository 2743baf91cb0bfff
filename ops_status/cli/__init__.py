"""The ``ops-status`` command line: ``python -m ops_status <command>``.

One module per command (``submit``, ``check``, ``watch``, ``listen``, ``worker``), each
with ``add_parser(commands)`` and ``run(args) -> int``; ``options`` holds the shared
declarations, ``wiring`` what the commands build (their settings, their clients),
``output`` what they print and the exit-code table. ``main`` only dispatches.

Each command is a thin entry point over the core the function uses: it parses its
arguments, loads the settings it needs (a flag beats the environment), calls one core
function (``ops_status.pipeline``, ``ops_status.listen``, ``ops_status.worker``) and
maps the result to output and an exit code. An error is one line on stderr; ``--debug``
adds its traceback and changes nothing else (the exit code stays the same).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence

from ops_status import __version__
from ops_status.cli import check, listen, ls, options, submit, watch, worker
from ops_status.cli.output import EXIT_CODES_HELP, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, say
from ops_status.errors import (
    ConfigurationError,
    InvalidWatchRequestError,
    OpsStatusError,
    UsageError,
)
from ops_status.logs import quiet_sdk_loggers

__all__ = ["main"]

_COMMANDS = (submit, check, watch, listen, ls, worker)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code.

    Example::

        python -m ops_status submit --status-url "$STATUS_URL" --correlation-id run-42
    """
    args = parse_arguments(argv)
    _configure_logging(args)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    # The CLI's contract: any error is one line and an exit code; --debug adds the traceback.
    except Exception as exc:  # noqa: BLE001
        usage = isinstance(exc, (UsageError, ConfigurationError, InvalidWatchRequestError))
        text = str(exc) if isinstance(exc, OpsStatusError) else f"unexpected {exc!r}"
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        hint = "" if usage or args.debug else " (--debug shows the traceback)"
        say(f"error: {' '.join(text.split())}{hint}")
        return EXIT_USAGE if usage else EXIT_ERROR


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; a usage error exits 64 with the command's usage and a hint."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    for each in (parser, *_subparsers(parser)):
        each.words = words
    args, extras = parser.parse_known_args(words)
    if extras:
        # Report on the command's own parser, so the usage and the hint are the command's.
        args.parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def build_parser() -> options.CommandParser:
    parser = options.CommandParser(
        prog="ops-status",
        description=textwrap.fill(
            "Watch Azure Resource Manager long-running operations through Service Bus: "
            "submit a watch from a pipeline, check or watch an operation directly, listen "
            "for the events, or run the watcher itself.",
            88,
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ops-status {__version__}")
    options.add_common(parser)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(commands)
    for sub in commands.choices.values():
        sub.set_defaults(parser=sub)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[options.CommandParser]:
    return [
        sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for sub in action.choices.values()
    ]


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
