"""A local Azure Service Bus emulator: a real AMQP 1.0 endpoint for the azure-servicebus SDK.

Never deployed. Modules:

- ``config``: entity configuration (and the SQL filter subset the template uses);
- ``broker``: the in-memory state behind one lock, backed by ``entities`` (queues, topics,
  subscriptions), ``locks`` (PeekLock), ``model`` (stored messages, deliveries),
  ``errors`` (its error tree) and ``inspection`` (read-only counts for tests);
- ``codec`` and ``sections``: message bytes and their AMQP sections;
- ``management``: request-response operations; ``auth``: SAS verification and claims;
- ``amqp``: the python-qpid-proton reactor handler, with ``deliveries``, ``nodes``
  (``$cbs``, ``$management``), ``connections`` and ``reactor``;
- ``emulator``: the public facade;
- ``__main__``: the CLI (``python -m emulators.servicebus --help``).
"""

from __future__ import annotations

from .broker import Clock, MessageState, MessageView
from .config import (
    AuthorizationRule,
    ConfigError,
    EmulatorConfig,
    EntityConfig,
    QueueConfig,
    SubscriptionConfig,
    TopicConfig,
    load_config,
)
from .emulator import ServiceBusEmulator

__all__ = [
    "AuthorizationRule",
    "Clock",
    "ConfigError",
    "EmulatorConfig",
    "EntityConfig",
    "MessageState",
    "MessageView",
    "QueueConfig",
    "ServiceBusEmulator",
    "SubscriptionConfig",
    "TopicConfig",
    "load_config",
]
