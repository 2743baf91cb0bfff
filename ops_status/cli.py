"""The ``ops-status`` command line: ``python -m ops_status <command>``.

Each command is a thin entry point over the same core the Function uses: it parses its
arguments, gets wired dependencies from ``bootstrap``, calls one core function and maps
the result to output and an exit code. Errors are one clear line (exit code 2 for usage
and configuration, 1 otherwise) and a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ops_status import __version__
from ops_status.errors import OpsStatusError

__all__ = ["main"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code.

    Example::

        python -m ops_status worker --concurrency 8
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except OpsStatusError as exc:
        if args.debug:
            raise
        print(f"ops-status: error: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return EXIT_USAGE if type(exc).__name__ == "ConfigurationError" else EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ops-status",
        description="Watch Azure Resource Manager long-running operations through Service Bus.",
    )
    parser.add_argument("--version", action="version", version=f"ops-status {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default: INFO)",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker",
        help="run the watcher as a long-running queue consumer (instead of Azure Functions)",
        description=(
            "Receive watch requests from OPS_STATUS_WATCH_QUEUE and handle them exactly as the "
            "function app does: PeekLock, complete on success, abandon on error, locks renewed "
            "while a handler runs, graceful stop on SIGTERM/SIGINT. Reads the same settings "
            "as the function app from the environment."
        ),
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="messages handled at once (default: 16, as host.json's maxConcurrentCalls)",
    )
    worker.add_argument(
        "--max-lock-renewal",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="renew a message's lock for at most this long (default: 300, as host.json)",
    )
    worker.set_defaults(command=_worker)
    return parser


def _worker(args: argparse.Namespace) -> int:
    from ops_status.bootstrap import create_service_bus_client, get_dependencies
    from ops_status.settings import load_settings
    from ops_status.worker import Worker, run_worker

    if args.concurrency < 1:
        raise SystemExit("ops-status: error: --concurrency must be at least 1")
    settings = load_settings()
    dependencies = get_dependencies(settings)
    client = create_service_bus_client(settings, dependencies.credential)
    worker = Worker(
        client,
        settings.watch_queue,
        dependencies,
        concurrency=args.concurrency,
        max_lock_renewal=args.max_lock_renewal,
    )
    with client:
        stats = run_worker(worker)
    return EXIT_OK if stats.receive_errors == 0 or stats.completed > 0 else EXIT_FAILED


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # The SDKs are chatty at INFO (every AMQP link and HTTP request); ours are the lines
    # that carry operation and correlation ids.
    for noisy in ("azure", "uamqp", "msal", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))
