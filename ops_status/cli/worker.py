"""``ops-status worker``: the watcher as a long-running queue consumer, for hosts other
than Azure Functions (a container, a VM). Same settings and handler as the function app."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ops_status.cli import options
from ops_status.cli.output import EXIT_ERROR, EXIT_OK
from ops_status.errors import UsageError

__all__ = ["add_parser", "run", "worst_exit_code"]

# As ``ops_status.cli._configure_logging``: a spawned child starts with no logging set up.
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


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
        example="  python -m ops_status worker --concurrency 8 --processes 2",
        exit_codes=(
            "exit codes: 0 stopped (SIGTERM/SIGINT), 5 a queue could never be read or a worker "
            "process died, 64 bad settings (with --processes N: the worst of the N)"
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
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help=(
            "worker processes, each with its own clients and --concurrency handlers: one "
            "process is bound to one core by the GIL (default: the cores available, "
            "honouring a container's CPU quota; 1 runs in this process)"
        ),
    )
    parser.set_defaults(command=run, default_log_level="INFO", sdk_quiet=False)


def run(args: argparse.Namespace) -> int:
    from ops_status.settings import load_settings
    from ops_status.worker import available_cores, run_processes

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    processes = available_cores() if args.processes is None else args.processes
    if processes < 1:
        raise UsageError("--processes must be at least 1")
    if processes == 1:
        return _run_here(args.concurrency, args.max_lock_renewal)
    load_settings()  # bad settings stop here (64), not in every child
    codes = run_processes(
        processes,
        _child,
        (
            args.concurrency,
            args.max_lock_renewal,
            logging.getLogger().level,
            logging.getLogger("azure").level,
        ),
    )
    return worst_exit_code(codes)


def _run_here(concurrency: int, max_lock_renewal: float, pending: list[int] | None = None) -> int:
    """One worker in this process until SIGTERM/SIGINT: the exit code."""
    from ops_status.bootstrap import create_service_bus_client, get_dependencies
    from ops_status.inbound import Queue
    from ops_status.settings import load_settings
    from ops_status.telemetry import configure_export
    from ops_status.worker import Worker, run_worker, stop_when_parent_exits

    settings = load_settings()
    configure_export(settings.telemetry)
    dependencies = get_dependencies(settings)
    client = create_service_bus_client(settings, dependencies.credential)
    worker = Worker(
        client,
        {Queue.INTAKE: settings.intake_queue, Queue.POLLS: settings.polls_queue},
        dependencies,
        concurrency=concurrency,
        max_lock_renewal=max_lock_renewal,
    )
    stop_when_parent_exits(worker)
    with client:
        stats = run_worker(worker, pending_signals=pending or [])
    return EXIT_ERROR if stats.unreadable_queues else EXIT_OK


def _child(
    concurrency: int, max_lock_renewal: float, level: int, sdk_level: int, pending: list[int]
) -> None:
    """A spawned worker process (``run_processes``): its own logging, clients, exit code.
    ``pending``: the SIGTERM/SIGINT recorded since it started, honoured once it runs."""
    from ops_status.logs import quiet_sdk_loggers

    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)
    quiet_sdk_loggers(sdk_level)
    try:
        code = _run_here(concurrency, max_lock_renewal, pending)
    except Exception:
        logging.getLogger(__name__).exception("worker process failed")
        code = EXIT_ERROR
    sys.exit(code)


def worst_exit_code(codes: list[int]) -> int:
    """The processes' exit code for the whole worker: the worst of theirs (README's table:
    0 < 5 < 64 < 130); a process killed by a signal (negative code) counts as 5."""
    return max((EXIT_ERROR if code < 0 else code for code in codes), default=EXIT_ERROR)
