"""A local Azure Service Bus emulator: a real AMQP 1.0 endpoint for the azure-servicebus SDK.

Never deployed. Modules: ``config`` (entity configuration), ``broker`` (in-memory state and
rules), ``codec`` (message bytes), ``management`` (request-response operations),
``auth`` (SAS verification and claims), ``amqp`` (the python-qpid-proton reactor handler),
``emulator`` (the public facade), ``__main__`` (the CLI: ``python -m emulators.servicebus --help``).
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
