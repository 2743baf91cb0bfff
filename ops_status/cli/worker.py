"""``ops-status worker``: the watcher as a long-running queue consumer, for hosts other
than Azure Functions (a container, a VM). Same settings and handler as the function app."""

from __future__ import annotations

import argparse
from typing import Any

from ops_status.cli import options
from ops_status.cli.output import EXIT_ERROR, EXIT_OK
from ops_status.errors import UsageError

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    parser = options.declare_command(
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
        exit_codes=(
            "exit codes: 0 stopped (SIGTERM/SIGINT), 5 a queue could never be read, 64 bad settings"
        ),
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
    parser.set_defaults(command=run, default_log_level="INFO", sdk_quiet=False)


def run(args: argparse.Namespace) -> int:
    from ops_status.bootstrap import create_service_bus_client, get_dependencies
    from ops_status.inbound import Queue
    from ops_status.settings import load_settings
    from ops_status.telemetry import configure_export
    from ops_status.worker import Worker, run_worker

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    settings = load_settings()
    configure_export(settings.telemetry)
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
    return EXIT_ERROR if stats.unreadable_queues else EXIT_OK
