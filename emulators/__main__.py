"""``python -m emulators demo|up|stack|env|topology``: the local system from the shell.

- ``demo``: the end-to-end demo (``make demo``), then exit.
- ``up``: the playground (``make up``): Service Bus emulator, ARM simulator with scripted
  operations, managed-identity endpoint and the worker in the foreground until Ctrl-C;
  prints the settings as ``export`` lines and writes ``local.settings.json``.
- ``stack``: ``up --no-worker``, for ``func start``.
- ``env``: the ``export`` lines of a playground on the given ports, for a second shell:
  ``eval "$(python -m emulators env)"``.
- ``topology``: the Service Bus entities derived from ``infra/azuredeploy.json`` as the
  emulator's JSON config; ``--write`` regenerates ``emulators/servicebus/entities.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from emulators.playground import (
    DEFAULT_PORTS,
    EXAMPLE_SCRIPT,
    LOCAL_SETTINGS,
    Ports,
    export_lines,
    playground_settings,
    run_playground,
)
from emulators.topology import local_config

ENTITIES_FILE = Path(__file__).resolve().parent / "servicebus" / "entities.json"


def _add_ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servicebus-port", type=int, default=DEFAULT_PORTS.servicebus)
    parser.add_argument("--arm-port", type=int, default=DEFAULT_PORTS.arm)
    parser.add_argument("--identity-port", type=int, default=DEFAULT_PORTS.identity)


def _ports(args: argparse.Namespace) -> Ports:
    return Ports(args.servicebus_port, args.arm_port, args.identity_port)


def entities_json() -> str:
    """The text of ``emulators/servicebus/entities.json``: the playground's namespace."""
    return json.dumps(local_config().to_dict(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the end-to-end demo and exit")
    demo.add_argument("--time-limit", type=float, default=60.0)
    for name, help_text in (
        ("up", "run the playground (peers and worker) until Ctrl-C"),
        ("stack", "the playground without the worker, for func start (up --no-worker)"),
    ):
        command = commands.add_parser(name, help=help_text)
        _add_ports(command)
        command.add_argument(
            "--arm-script",
            type=Path,
            default=EXAMPLE_SCRIPT,
            help="JSON file: operation id -> list of steps (examples/README.md; "
            "default examples/arm-playground.json)",
        )
        command.add_argument(
            "--local-settings",
            type=Path,
            default=LOCAL_SETTINGS,
            help="where to write the settings for func start (default ./local.settings.json)",
        )
        if name == "up":
            command.add_argument(
                "--no-worker", action="store_true", help="do not start the worker (func start)"
            )
    env = commands.add_parser("env", help="print the playground's settings as export lines")
    _add_ports(env)
    topology = commands.add_parser("topology", help="print the template-derived entities")
    topology.add_argument("--write", action="store_true", help=f"write {ENTITIES_FILE.name}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    if args.command == "demo":
        from emulators.demo import run_demo

        return run_demo(time_limit=args.time_limit)
    if args.command == "env":
        print("\n".join(export_lines(playground_settings(_ports(args)))))  # noqa: T201
        return 0
    if args.command == "topology":
        if args.write:
            ENTITIES_FILE.write_text(entities_json(), encoding="utf-8")
        else:
            sys.stdout.write(entities_json())
        return 0
    return run_playground(
        ports=_ports(args),
        script=args.arm_script,
        local_settings=args.local_settings,
        worker=args.command == "up" and not args.no_worker,
    )


if __name__ == "__main__":
    sys.exit(main())
