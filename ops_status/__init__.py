"""ops-status: watches ARM long-running operations from a Service Bus queue.

The public surface is small; everything else lives in modules named after what they
own (``request``, ``decision``, ``arm``, ``servicebus``, ...).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ops_status.bootstrap import build_dependencies, get_dependencies
from ops_status.decision import Finish, Reschedule, decide
from ops_status.errors import (
    ConfigurationError,
    CredentialError,
    InvalidWatchRequestError,
    OpsStatusError,
    ServiceBusSendError,
)
from ops_status.handler import Dependencies, HandlingResult, handle_watch_message
from ops_status.policy import PollPolicy
from ops_status.request import WatchRequest, parse_watch_request
from ops_status.settings import Settings, load_settings

__all__ = [
    "ConfigurationError",
    "CredentialError",
    "Dependencies",
    "Finish",
    "HandlingResult",
    "InvalidWatchRequestError",
    "OpsStatusError",
    "PollPolicy",
    "Reschedule",
    "ServiceBusSendError",
    "Settings",
    "WatchRequest",
    "__version__",
    "build_dependencies",
    "decide",
    "get_dependencies",
    "handle_watch_message",
    "load_settings",
    "parse_watch_request",
]
