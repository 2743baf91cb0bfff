"""``python -m emulators.arm``: serve scripted ARM operation statuses on loopback.

    python -m emulators.arm --port 8081 --token tok --script scripts.json

The script file maps operation ids to lists of steps (see ``emulators.arm.script``).
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from .script import load_scripts
from .server import ArmSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.arm",
        description="Serve scripted ARM operation statuses on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", help="bearer token to require (default: accept any)")
    parser.add_argument("--script", type=Path, help="JSON file: operation id -> list of steps")
    parser.add_argument("--read-budget", type=int, help="enable ARM's read token bucket")
    parser.add_argument("--refill-per-second", type=float, default=25.0)
    args = parser.parse_args(argv)

    simulator = ArmSimulator(
        args.token,
        host=args.host,
        port=args.port,
        read_budget=args.read_budget,
        refill_per_second=args.refill_per_second,
    )
    scripts = load_scripts(args.script) if args.script else {}
    for operation_id, steps in scripts.items():
        simulator.script(operation_id, steps)
    simulator.start()
    # The CLI talks to a person at a terminal; the library itself only logs.
    print(f"ARM simulator listening on {simulator.endpoint}", flush=True)  # noqa: T201
    for operation_id in scripts:
        print(f"  {operation_id}: {simulator.status_url(operation_id)}", flush=True)  # noqa: T201
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
