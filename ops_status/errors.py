"""The exception tree of ops-status.

Every error the package raises on purpose derives from ``OpsStatusError``; a new type
exists only where a caller branches on it::

    OpsStatusError
    ├── ConfigurationError        a setting is missing or malformed; raised at start-up
    ├── InvalidWatchRequestError  a queue message is not a valid watch request; never retried,
    │                             turned into a rejection event
    ├── CredentialError           the CLI could not get a token (the function instead treats
    │                             a missing token as a failed read and retries it)
    ├── ServiceBusSendError       the follow-up (next poll or event) could not be sent; after
    │                             a wait that grows with the delivery count, the message is
    │                             abandoned and redelivered
    ├── EventReceiveError         the CLI could not read the events subscription
    └── UsageError                the command line asks for something impossible (exit 64)

Failures to *read* an operation's status (429, 5xx, 404, timeouts) are not exceptions:
they are observations the decision function handles (see ``ops_status.observation``).
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CredentialError",
    "EventReceiveError",
    "InvalidWatchRequestError",
    "OpsStatusError",
    "ServiceBusSendError",
    "UsageError",
]


class OpsStatusError(Exception):
    """Root of every error ops-status raises on purpose."""


class ConfigurationError(OpsStatusError):
    """A setting is missing or malformed. The message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class InvalidWatchRequestError(OpsStatusError):
    """A watch request failed validation. ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid watch request: " + "; ".join(errors))
        self.errors = list(errors)


class CredentialError(OpsStatusError):
    """The credential could not produce a token for the ARM endpoint."""


class ServiceBusSendError(OpsStatusError):
    """Scheduling the next watch or publishing an event failed."""


class EventReceiveError(OpsStatusError):
    """Reading the events subscription failed (connection, authorisation, missing entity)."""


class UsageError(OpsStatusError):
    """The command line asks for something impossible (exit code 64)."""
