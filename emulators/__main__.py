"""``python -m emulators demo|stack``: the demo, or the whole local stack in the foreground.

``stack`` runs the identity endpoint, the ARM simulator and the Service Bus emulator on
fixed ports and prints the app settings that point ``func start`` (or the worker) at
them. ARM answers from a JSON script file (``--arm-script``, see ``emulators.arm``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from emulators.arm import load_scripts
from emulators.demo import run_demo
from emulators.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the end-to-end demo and exit")
    demo.add_argument("--time-limit", type=float, default=60.0)
    stack = commands.add_parser("stack", help="run the local stack until Ctrl-C")
    stack.add_argument("--servicebus-port", type=int, default=5672)
    stack.add_argument("--arm-port", type=int, default=8081)
    stack.add_argument("--identity-port", type=int, default=8082)
    stack.add_argument("--arm-script", help="JSON file: operation id -> list of steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    if args.command == "demo":
        return run_demo(time_limit=args.time_limit)

    with LocalStack(
        servicebus_port=args.servicebus_port,
        arm_port=args.arm_port,
        identity_port=args.identity_port,
    ) as local:
        if args.arm_script:
            for operation_id, steps in load_scripts(Path(args.arm_script)).items():
                local.arm.script(operation_id, steps)
        print("Local stack running. App settings for local.settings.json / the worker:")  # noqa: T201
        print(json.dumps(local.environment(identity_based=False), indent=2))  # noqa: T201
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
