"""The refusals the broker reports to a client, each with its AMQP error condition.

::

    BrokerError                     amqp:internal-error (500)
    ├── EntityNotFoundError         amqp:not-found (404); also a KeyError
    ├── NotAllowedError             amqp:not-allowed (400)
    ├── MessageLockLostError        com.microsoft:message-lock-lost (410)
    ├── MessageNotFoundError        com.microsoft:message-not-found (404)
    ├── SendRefusedError            amqp:internal-error (500): an injected fault
    └── MessageSizeExceededError    amqp:link:message-size-exceeded (413)

Configuration problems are a separate root, ``ConfigError`` (a ``ValueError``), raised
before any client connects.

The AMQP glue turns ``condition`` and ``description`` into the link's or the
disposition's error; the management node answers with ``status_code``.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "EntityNotFoundError",
    "MessageLockLostError",
    "MessageNotFoundError",
    "MessageSizeExceededError",
    "NotAllowedError",
    "SendRefusedError",
]


class BrokerError(Exception):
    """A refusal the broker reports to a client, with the AMQP error condition to use."""

    condition = "amqp:internal-error"
    status_code = 500

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class EntityNotFoundError(BrokerError, KeyError):
    condition = "amqp:not-found"
    status_code = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return self.description


class NotAllowedError(BrokerError):
    condition = "amqp:not-allowed"
    status_code = 400


class MessageLockLostError(BrokerError):
    condition = "com.microsoft:message-lock-lost"
    status_code = 410


class MessageNotFoundError(BrokerError):
    condition = "com.microsoft:message-not-found"
    status_code = 404


class SendRefusedError(BrokerError):
    """An injected fault (``refuse_sends``): Service Bus's transient internal error."""

    condition = "amqp:internal-error"
    status_code = 500


class MessageSizeExceededError(BrokerError):
    condition = "amqp:link:message-size-exceeded"
    status_code = 413


class ConfigError(ValueError):
    """The entity configuration is malformed (bad key, bad value, bad name)."""
