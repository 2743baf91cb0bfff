"""Command line: run the Service Bus emulator on its own (e.g. behind ``func start``).

::

    python -m emulators.servicebus --config entities.json --port 5672
    python -m emulators.servicebus --queue watches --topic events \\
        --subscription events/all --subscription events/failed:status=Failed

Prints the connection string to use (``ServiceBusConnection`` in local.settings.json),
and one per further authorization rule of the config file (entity-level ones carry
``EntityPath=``), then serves until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .config import (
    ConfigError,
    EmulatorConfig,
    QueueConfig,
    SubscriptionConfig,
    TopicConfig,
    load_config,
    parse_subscription_flag,
)
from .emulator import ServiceBusEmulator


def _say(text: str, *, err: bool = False) -> None:
    """The CLI's own output (the library itself only logs)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.servicebus",
        description="A local Azure Service Bus (AMQP 1.0) for the azure-servicebus SDK.",
    )
    parser.add_argument("--config", help="JSON entity file (see emulators/servicebus/config.py)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=5672, help="port (5672; 0 picks a free one)")
    parser.add_argument("--queue", action="append", default=[], metavar="NAME", help="add a queue")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME", help="add a topic")
    parser.add_argument(
        "--subscription",
        action="append",
        default=[],
        metavar="TOPIC/NAME[:prop=value,...]",
        help="add a subscription, optionally filtered on application properties "
        "(sys.subject=..., sys.correlation_id=... for system properties)",
    )
    parser.add_argument(
        "--duplicate-detection-window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="turn on duplicate detection for the entities given as flags",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (INFO)")
    return parser


def _config_from_flags(args: argparse.Namespace) -> EmulatorConfig:
    window = args.duplicate_detection_window
    queues = {name: QueueConfig(duplicate_detection_window=window) for name in args.queue}
    subscriptions: dict[str, dict[str, SubscriptionConfig]] = {name: {} for name in args.topic}
    for flag in args.subscription:
        topic, name, sub = parse_subscription_flag(flag)
        subscriptions.setdefault(topic, {})[name] = sub
    topics = {
        name: TopicConfig(subscriptions=subs, duplicate_detection_window=window)
        for name, subs in subscriptions.items()
    }
    return EmulatorConfig(queues=queues, topics=topics)


def banner(emulator: ServiceBusEmulator) -> list[str]:
    """What the CLI prints once listening: address, entities, connection strings."""
    lines = [
        f"Service Bus emulator listening on {emulator.fully_qualified_namespace}",
        "Entities: " + ", ".join(emulator.broker.entity_paths()),
        f"Connection string: {emulator.connection_string}",
    ]
    config = emulator.config
    scoped: list[tuple[str | None, Any]] = [(None, r) for r in config.authorization_rules]
    for name, entity in [*config.queues.items(), *config.topics.items()]:
        scoped.extend((name, rule) for rule in entity.authorization_rules)
    for entity_name, rule in scoped:
        where = "namespace" if entity_name is None else entity_name
        rights = "/".join(sorted(rule.rights))
        lines.append(
            f"Connection string ({rule.key_name} on {where}, {rights}): "
            + emulator.connection_string_for(rule.key_name, entity_name)
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config) if args.config else EmulatorConfig()
        config = config.merged(_config_from_flags(args))
    except (ConfigError, OSError) as exc:
        _say(f"error: {exc}", err=True)
        return 2
    if not config.queues and not config.topics:
        _say("error: no entities: give --config, --queue or --topic", err=True)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator = ServiceBusEmulator(config=config, host=args.host, port=args.port).start()
    except ConfigError as exc:  # e.g. the file redefines the built-in root rule
        _say(f"error: {exc}", err=True)
        return 2
    except OSError as exc:
        _say(f"error: cannot listen on {args.host}:{args.port}: {exc}", err=True)
        return 1
    try:
        for line in banner(emulator):
            _say(line)
        while not stop.wait(0.5):
            if not emulator.running:
                _say("error: the emulator stopped unexpectedly", err=True)
                return 1
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
