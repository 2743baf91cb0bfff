"""What the AMQP side records per connection and per link, and shares with other threads.

This module owns ``ServerStats`` (counters and switches other threads read and set under
its lock), ``Connection`` (one client connection: its reply links and the replies queued
for them, and the CBS grants its tokens gave), ``LinkInfo`` (what a link is for, kept on
the proton link object) and ``condition`` (an AMQP error in the shape the SDK needs).
Everything but ``ServerStats`` lives on the reactor thread.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from proton import Condition, symbol

from .auth import Grant

__all__ = ["CBS_NODE", "Connection", "LinkInfo", "ServerStats", "condition"]

CBS_NODE = "$cbs"


@dataclass
class ServerStats:
    """Counters and switches shared with other threads (always under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    connections_opened: int = 0
    connections_active: int = 0
    #: (audience, token) per put-token; the emulator never logs these.
    cbs_tokens: list[tuple[str, str]] = field(default_factory=list)
    reject_cbs: bool = False
    #: (entity path, reason) per refused token or claim: "InvalidSignature",
    #: "ExpiredToken", "InvalidAudience", "MalformedToken", or "<Right> claim".
    authorization_failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Connection:
    ident: int
    connection: Any  # proton.Connection
    transport: Any  # proton.Transport
    #: reply address -> the client's receiver link for it (CBS and management replies).
    reply_links: dict[str, Any] = field(default_factory=dict)
    #: reply address -> replies waiting for credit on that link.
    pending_replies: dict[str, deque[bytes]] = field(default_factory=dict)
    reply_tag: int = 0
    #: audience path -> what the last accepted put-token for it allows.
    grants: dict[str, Grant] = field(default_factory=dict)


@dataclass
class LinkInfo:
    """What a link is for; stored on the proton link object itself."""

    kind: str  # "send" | "receive" | "cbs-request" | "cbs-reply" | "mgmt-request" | "mgmt-reply"
    address: str  # entity/store path, or the node address for request-response links
    connection: int
    receive_and_delete: bool = False
    consumer: int | None = None


def condition(name: str, description: str) -> Condition:
    """An AMQP error (for a rejected outcome, a detach or a close). The info map must be
    present: the SDK indexes ``error[2]`` and proton omits a null info. On a rejected
    send its callback then fails and the send hangs until its timeout; on a close the
    SDK's handler dies with an IndexError."""
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})
