"""The AMQP 1.0 side of the emulator: a python-qpid-proton reactor handler.

This module owns the *wire*: accepting connections (SASL ANONYMOUS), the CBS node
(``$cbs`` put-token, verified by ``auth.Authorizer``; the grants it gives are kept per
connection and checked when links attach and per management operation), management
nodes (``<entity>/$management``), sender links (client sends into a queue or topic) and
receiver links (client receives from a queue, subscription or dead-letter queue), credit
and dispositions. Every decision about messages is delegated to ``Broker`` (state) and
``management`` (request semantics); message bytes are built by ``codec``.

All proton objects live on the reactor thread. Other threads reach it only through
``AmqpServer.call`` (an ``EventInjector``), and read ``ServerStats`` under its lock.

Sharp edges of proton as a server for the azure-servicebus 7.15 SDK, handled here:

* proton's ``Delivery.tag`` decodes tags as UTF-8 and fails on binary tags, so lock
  tokens are kept on the delivery object itself (proton wrappers store Python
  attributes in the C object's record, so they survive the wrapper being re-created;
  never key anything on ``id()`` of a wrapper).
* The SDK detaches links whose attach reply lacks source/target, so both are copied
  from the remote terminus before opening.
* Server-side SASL must be switched on (ANONYMOUS) when the connection is bound.
* SDK 7.15 (PeekLock) settles with rcv-settle-mode ``second`` and waits for the broker
  to echo a *settled* disposition with the outcome it applied: ``accepted`` for
  complete, ``modified`` for abandon/defer, ``rejected`` *without* an error for
  dead-letter (a rejected echo that carries an error is read as a failure, which is how
  ``com.microsoft:message-lock-lost`` is reported).
* Message size: the attach reply advertises ``max-message-size`` (the SDK sizes batches
  from it) and an oversize transfer is rejected with ``amqp:link:message-size-exceeded``,
  which the SDK raises as ``MessageSizeExceededError``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from proton import Condition, Delivery, Endpoint, Handler, Link, Terminus, symbol
from proton.reactor import ApplicationEvent, Container, EventInjector

from .auth import ROOT_KEY_NAME, Authorizer, Grant, TokenRejectedError, UnauthorizedError
from .broker import Broker, BrokerError, NotAllowedError, entity_path
from .codec import (
    MalformedMessageError,
    encode_amqp_value_message,
    parse_message,
    split_batch,
    to_plain,
)
from .config import LISTEN, SEND, AuthorizationRule, EmulatorConfig
from .management import encode_delivered, handle_management_request

__all__ = ["AmqpServer", "ServerStats"]

_LOG = logging.getLogger(__name__)

CBS_NODE = "$cbs"
#: Credit the broker keeps open on each link a client sends on.
_CREDIT_WINDOW = 500
#: How often the reactor applies the passage of time (schedules, lock expiry, TTL).
TICK_SECONDS = 0.025

_F = TypeVar("_F", bound=Callable[..., None])


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
class _Connection:
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
class _LinkInfo:
    """What a link is for; stored on the proton link object itself."""

    kind: str  # "send" | "receive" | "cbs-request" | "cbs-reply" | "mgmt-request" | "mgmt-reply"
    address: str  # entity/store path, or the node address for request-response links
    connection: int
    receive_and_delete: bool = False
    consumer: int | None = None


class _QuietDisconnects(logging.Filter):
    """proton's IO handler logs a client that vanishes mid-write at ERROR ("Couldn't send:
    BrokenPipeError"). For a broker that is routine (the SDK closes sockets without
    waiting for our close frame; tests drop connections on purpose), so those records
    are dropped; every other proton record passes."""

    _ROUTINE = ("BrokenPipeError", "ConnectionResetError", "ConnectionAbortedError")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith(("Couldn't send", "Couldn't recv"))
            and any(name in message for name in self._ROUTINE)
        )


_PROTON_FILTER = _QuietDisconnects()


def _quiet_proton_disconnects() -> None:
    proton_logger = logging.getLogger("proton")
    if _PROTON_FILTER not in proton_logger.filters:
        proton_logger.addFilter(_PROTON_FILTER)


def _guarded(method: _F) -> _F:
    """Never let an exception escape into proton's reactor loop (it would stop every
    connection). Log it and close the offending connection with an internal error."""

    @functools.wraps(method)
    def wrapper(self: AmqpServer, event: Any, *args: Any) -> None:
        try:
            method(self, event, *args)
        except Exception:  # noqa: BLE001 - an escaping error would stop the whole reactor
            _LOG.exception("emulator error in %s", method.__name__)
            connection = getattr(event, "connection", None)
            if connection is not None:
                try:
                    connection.condition = _condition(
                        "amqp:internal-error", "Service Bus emulator internal error"
                    )
                    connection.close()
                except Exception:  # noqa: BLE001 - best effort on an already broken connection
                    _LOG.debug("could not close the connection", exc_info=True)

    return wrapper  # type: ignore[return-value]


class AmqpServer(Handler):
    """The reactor handler. Create it, hand it to a ``Container``, call ``listen``."""

    def __init__(
        self,
        broker: Broker,
        *,
        authorizer: Authorizer | None = None,
        container_id: str = "servicebus-emulator",
    ) -> None:
        super().__init__()
        _quiet_proton_disconnects()
        self.broker = broker
        self.authorizer = authorizer or Authorizer(
            EmulatorConfig(), AuthorizationRule(ROOT_KEY_NAME, "SAS_KEY_VALUE", {"Manage"})
        )
        #: ``host:port`` as clients address it (set by ``listen``), for error texts.
        self.namespace = "localhost"
        self.stats = ServerStats()
        self.container_id = container_id
        self.ready = threading.Event()
        self._connections: dict[int, _Connection] = {}
        #: every accepted socket not yet known closed (for ``close_sockets``).
        self._sockets: list[socket.socket] = []
        self._consumers: dict[int, tuple[Any, _LinkInfo]] = {}
        self._next_id = 0
        self._calls: queue.Queue[Callable[[], None]] = queue.Queue()
        self._injector = EventInjector()
        self._container: Container | None = None
        self._acceptor: Any = None
        self._stopping = False
        self._shutdown_deadline = 0.0

    # -- lifecycle (called from the owning thread before/after the reactor runs) ------

    def listen(self, container: Container, host: str, port: int) -> int:
        """Bind the listening socket; returns the actual port (``port=0`` picks one)."""
        self._container = container
        self._acceptor = container.acceptor(host, str(port))
        container.selectable(self._injector)
        # proton's Acceptor keeps its socket on a private selectable; it is the only place
        # the bound port (for port=0) can be read.
        sock = self._acceptor._selectable._delegate
        bound = int(sock.getsockname()[1])
        self.namespace = f"{host}:{bound}"
        return bound

    def call(self, fn: Callable[[], None], *, wait: bool = True, timeout: float = 10.0) -> None:
        """Run ``fn`` on the reactor thread; optionally wait for it to finish."""
        done = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - handed to the caller below
                error.append(exc)
                if not wait:
                    _LOG.exception("emulator call failed on the reactor thread")
            finally:
                done.set()

        self._calls.put(run)
        self._injector.trigger(ApplicationEvent("sb_call"))
        if wait:
            if not done.wait(timeout):
                raise TimeoutError("the emulator's reactor thread did not respond")
            if error:
                raise error[0]

    def close_sockets(self) -> None:
        """Last-resort cleanup after the reactor stopped: close every socket it may have
        left open (the reactor can stop before proton's IO handler closes them)."""
        sockets = list(self._sockets)
        if self._acceptor is not None:
            sockets.append(self._acceptor._selectable._delegate)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        # proton's EventInjector never closes its wake-up pipe.
        for fd in self._injector.pipe:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._sockets.clear()
        self._connections.clear()

    # -- reactor events -----------------------------------------------------------------

    @_guarded
    def on_reactor_init(self, event: Any) -> None:
        event.container.schedule(TICK_SECONDS, self)
        self.ready.set()

    @_guarded
    def on_timer_task(self, event: Any) -> None:
        if self._stopping:
            self._finish_shutdown()
            return
        self.broker.tick()
        self._pump_all()
        event.container.schedule(TICK_SECONDS, self)

    def on_sb_call(self, event: Any) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            fn()  # never raises: ``call`` wraps it

    # -- connections -----------------------------------------------------------------

    @_guarded
    def on_connection_bound(self, event: Any) -> None:
        transport = event.transport
        sasl = transport.sasl()
        sasl.allowed_mechs("ANONYMOUS")  # what the SDK offers before CBS; nothing else
        selectable = getattr(transport, "_selectable", None)  # set by proton's Acceptor
        if selectable is not None:
            self._sockets = [sock for sock in self._sockets if sock.fileno() != -1]
            self._sockets.append(selectable._delegate)
        self._next_id += 1
        conn = _Connection(self._next_id, event.connection, transport)
        event.connection.sb_connection = conn.ident
        self._connections[conn.ident] = conn
        with self.stats.lock:
            self.stats.connections_opened += 1
            self.stats.connections_active = len(self._connections)
        _LOG.debug("connection %d accepted", conn.ident)

    @_guarded
    def on_connection_remote_open(self, event: Any) -> None:
        connection = event.connection
        if connection.state & Endpoint.LOCAL_UNINIT:
            connection.container = self.container_id
            connection.open()

    @_guarded
    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    @_guarded
    def on_connection_remote_close(self, event: Any) -> None:
        if not event.connection.state & Endpoint.LOCAL_CLOSED:
            event.connection.close()
        self._forget_connection(event.connection)

    @_guarded
    def on_session_remote_close(self, event: Any) -> None:
        if not event.session.state & Endpoint.LOCAL_CLOSED:
            event.session.close()

    @_guarded
    def on_transport_closed(self, event: Any) -> None:
        connection = event.connection
        if connection is not None:
            self._forget_connection(connection)

    def _forget_connection(self, connection: Any) -> None:
        ident = getattr(connection, "sb_connection", None)
        if ident is None or ident not in self._connections:
            return
        del self._connections[ident]
        for key, (_, info) in list(self._consumers.items()):
            if info.connection == ident:
                del self._consumers[key]
        with self.stats.lock:
            self.stats.connections_active = len(self._connections)
        _LOG.debug("connection %d gone", ident)

    # -- links ---------------------------------------------------------------------------

    @_guarded
    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        conn = self._connections.get(getattr(link.connection, "sb_connection", -1))
        if conn is None:
            return
        # The SDK detaches a link whose attach reply has no source/target: echo both.
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        try:
            if link.is_sender:
                info = self._attach_outgoing(link, conn)
            else:
                info = self._attach_incoming(link, conn)
        except BrokerError as exc:
            _LOG.info("refused link %r: %s", link.name, exc.description)
            if link.is_receiver:
                # As Service Bus does: no target in the reply, then a detach with the error.
                # Echoing the target would let the SDK send first and then report the
                # detach as an unknown send failure instead of entity-not-found.
                link.target.type = Terminus.UNSPECIFIED
            link.open()
            link.condition = _condition(exc.condition, exc.description)
            link.close()
            return
        link.sb_link = info
        link.open()
        if link.is_receiver:
            link.flow(_CREDIT_WINDOW)
        else:
            self._pump_link(link, info)

    def _attach_outgoing(self, link: Any, conn: _Connection) -> _LinkInfo:
        """The client attached a receiver: we send from ``source``."""
        source = link.remote_source.address or ""
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        if source == CBS_NODE:
            conn.reply_links[source] = link
            return _LinkInfo("cbs-reply", source, conn.ident)
        path = entity_path(source)
        if path.lower().endswith("/$management"):
            self._authorize(conn, path, None)
            self.broker.check_management(path)
            conn.reply_links[path.lower()] = link
            return _LinkInfo("mgmt-reply", path.lower(), conn.ident)
        # Authorization before existence, as on Service Bus: no probing for entity names.
        self._authorize(conn, path, LISTEN)
        if link.remote_source.filter is not None and _has_session_filter(link):
            raise NotAllowedError("The emulator does not support session-enabled entities.")
        store = self.broker.check_receivable(source)
        self._next_id += 1
        info = _LinkInfo(
            "receive",
            store,
            conn.ident,
            receive_and_delete=link.remote_snd_settle_mode == Link.SND_SETTLED,
            consumer=self._next_id,
        )
        self._consumers[self._next_id] = (link, info)
        return info

    def _attach_incoming(self, link: Any, conn: _Connection) -> _LinkInfo:
        """The client attached a sender: we receive into ``target``."""
        target = link.remote_target.address or ""
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        if target == CBS_NODE:
            return _LinkInfo("cbs-request", target, conn.ident)
        path = entity_path(target)
        if path.lower().endswith("/$management"):
            self._authorize(conn, path, None)
            self.broker.check_management(path)
            return _LinkInfo("mgmt-request", path.lower(), conn.ident)
        self._authorize(conn, path, SEND)
        entity = self.broker.check_sendable(target)
        # Advertised so the SDK sizes batches to the Standard-tier limit.
        link.max_message_size = self.broker.max_message_size(target)
        return _LinkInfo("send", entity, conn.ident)

    @_guarded
    def on_link_remote_close(self, event: Any) -> None:
        link = event.link
        info: _LinkInfo | None = getattr(link, "sb_link", None)
        if info is not None:
            if info.consumer is not None:
                self._consumers.pop(info.consumer, None)
            conn = self._connections.get(info.connection)
            if conn is not None and info.kind in ("cbs-reply", "mgmt-reply"):
                conn.reply_links.pop(info.address, None)
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.close()

    on_link_remote_detach = on_link_remote_close

    @_guarded
    def on_link_flow(self, event: Any) -> None:
        link = event.link
        info: _LinkInfo | None = getattr(link, "sb_link", None)
        if info is None or not link.is_sender:
            return
        if info.kind == "receive":
            self._pump_link(link, info)
        elif info.kind in ("cbs-reply", "mgmt-reply"):
            conn = self._connections.get(info.connection)
            if conn is not None:
                self._flush_replies(conn, info.address)

    # -- deliveries ----------------------------------------------------------------------

    @_guarded
    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        link = delivery.link
        if link.connection.state & Endpoint.LOCAL_CLOSED:
            # We closed this connection (drop or stop): like a broker that has sent its
            # close, act on nothing the client still sends (a completion arriving now must
            # not count, the client never sees its outcome).
            return
        info: _LinkInfo | None = getattr(link, "sb_link", None)
        if info is None:
            if delivery.link.is_receiver and not delivery.partial:
                delivery.settle()
            return
        if link.is_sender:
            self._on_disposition(delivery, info)
            return
        if delivery.aborted:
            delivery.settle()
            return
        if not delivery.readable or delivery.partial:
            return  # proton keeps buffering a multi-frame transfer until it is complete
        raw = bytes(link.recv(delivery.pending) or b"")
        link.advance()
        if info.kind == "send":
            self._on_transfer(delivery, info, raw)
        elif info.kind == "cbs-request":
            self._on_put_token(delivery, info, raw)
        elif info.kind == "mgmt-request":
            self._on_management_request(delivery, info, raw)
        else:  # pragma: no cover - receiver kinds only
            delivery.settle()
        if link.credit < _CREDIT_WINDOW // 2 and not link.state & Endpoint.LOCAL_CLOSED:
            link.flow(_CREDIT_WINDOW - link.credit)

    def _on_transfer(self, delivery: Any, info: _LinkInfo, raw: bytes) -> None:
        limit = self.broker.max_message_size(info.address)
        if len(raw) > limit:
            # Service Bus's wording; the SDK maps the condition to MessageSizeExceededError.
            self._reject(
                delivery,
                "amqp:link:message-size-exceeded",
                f"The received message (size:{len(raw)} bytes) exceeds the limit "
                f"({limit} bytes) currently allowed on the link.",
            )
            return
        try:
            message = parse_message(raw)
            messages = split_batch(message) or [message]
            self.broker.send(info.address, messages)
        except MalformedMessageError as exc:
            self._reject(delivery, "amqp:decode-error", str(exc))
            return
        except BrokerError as exc:
            self._reject(delivery, exc.condition, exc.description)
            return
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        self._pump_all()

    @staticmethod
    def _reject(delivery: Any, condition: str, description: str) -> None:
        delivery.local.condition = _condition(condition, description)
        delivery.update(Delivery.REJECTED)
        delivery.settle()

    def _on_put_token(self, delivery: Any, info: _LinkInfo, raw: bytes) -> None:
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        conn = self._connections.get(info.connection)
        try:
            request = parse_message(raw)
        except MalformedMessageError as exc:
            _LOG.info("malformed CBS request: %s", exc)
            return
        props = {str(k): to_plain(v) for k, v in request.application_properties.items()}
        audience = str(props.get("name", ""))
        body = request.body_value
        token = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        token = token if isinstance(token, str) else ""
        with self.stats.lock:
            self.stats.cbs_tokens.append((audience, token))
            reject = self.stats.reject_cbs
        if reject:
            status, text = 401, "Unauthorized: tokens are rejected"
            _LOG.debug("put-token for %s rejected (reject_cbs)", audience)
        else:
            try:
                grant = self.authorizer.put_token(audience, token)
            except TokenRejectedError as exc:
                status, text = exc.status_code, exc.description
                path = entity_path(audience).lower()
                with self.stats.lock:
                    self.stats.authorization_failures.append((path, exc.reason))
                # Tokens are credentials: log the audience and the reason only.
                _LOG.info("put-token for %s refused: %s", audience, exc.reason)
            else:
                status, text = 202, "Accepted"
                if conn is not None:
                    conn.grants[grant.audience] = grant
                _LOG.debug("put-token for %s accepted (%s)", audience, grant.identity)
        reply = encode_amqp_value_message(
            body=None,
            correlation_id=request.properties.message_id,
            application_properties={"status-code": status, "status-description": text},
        )
        if conn is not None:
            self._send_reply(conn, CBS_NODE, reply)

    def _on_management_request(self, delivery: Any, info: _LinkInfo, raw: bytes) -> None:
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        conn = self._connections.get(info.connection)
        try:
            request = parse_message(raw)
        except MalformedMessageError as exc:
            _LOG.info("malformed management request: %s", exc)
            return
        props = {str(k): to_plain(v) for k, v in request.application_properties.items()}
        operation = str(props.get("operation", ""))
        entity = info.address.rsplit("/", 1)[0]

        def authorize(right: str) -> None:
            if conn is None:
                raise UnauthorizedError("Unauthorized access: the connection is gone.")
            self._authorize(conn, entity, right)

        reply = handle_management_request(
            self.broker, entity, operation, request.body_value, authorize
        )
        _LOG.debug("%s on %s -> %d", operation, entity, reply.status_code)
        encoded = encode_amqp_value_message(
            body=reply.body,
            correlation_id=request.properties.message_id,
            application_properties=reply.application_properties(),
        )
        reply_to = (request.properties.reply_to or info.address).lower()
        if conn is not None:
            self._send_reply(conn, entity_path(reply_to), encoded)
        self._pump_all()  # abandon/defer/cancel may have changed what is receivable

    def _authorize(self, conn: _Connection, path: str, right: str | None) -> None:
        """Raise ``UnauthorizedError`` unless this connection's tokens give ``right`` on
        ``path`` (``None``: any right). Records the refusal for ``authorization_failures``."""
        try:
            self.authorizer.require(conn.grants.values(), path, right, namespace=self.namespace)
        except UnauthorizedError:
            with self.stats.lock:
                self.stats.authorization_failures.append((path.lower(), f"{right or 'any'} claim"))
            raise

    def _send_reply(self, conn: _Connection, address: str, payload: bytes) -> None:
        conn.pending_replies.setdefault(address, deque()).append(payload)
        self._flush_replies(conn, address)

    def _flush_replies(self, conn: _Connection, address: str) -> None:
        link = conn.reply_links.get(address)
        pending = conn.pending_replies.get(address)
        if link is None or not pending:
            return
        while pending and link.credit > 0:
            conn.reply_tag += 1
            delivery = link.delivery(conn.reply_tag.to_bytes(8, "big"))
            link.send(pending.popleft())
            link.advance()
            delivery.settle()  # replies are fire-and-forget; the SDK never settles them

    def _on_disposition(self, delivery: Any, info: _LinkInfo) -> None:
        """The client settled (or updated) a message we delivered."""
        token: uuid.UUID | None = getattr(delivery, "sb_lock_token", None)
        state = delivery.remote_state
        if token is None or info.receive_and_delete:
            if delivery.remote_settled:
                delivery.settle()
            return
        if state is None or state == Delivery.RECEIVED:
            if delivery.remote_settled:  # settled without an outcome: give it back
                self.broker.release(token)
                delivery.settle()
                self._pump_all()
            return
        remote = delivery.remote
        try:
            if state == Delivery.ACCEPTED:
                self.broker.complete(token)
            elif state == Delivery.RELEASED:
                self.broker.release(token)
            elif state == Delivery.MODIFIED:
                if remote.undeliverable:
                    self.broker.defer(token)
                else:
                    self.broker.abandon(token)
                delivery.local.failed = remote.failed
                delivery.local.undeliverable = remote.undeliverable
            elif state == Delivery.REJECTED:
                reason, description = _dead_letter_details(remote.condition)
                self.broker.dead_letter(token, reason, description)
                delivery.local.condition = None  # an echo with an error reads as failure
            delivery.update(state)
        except BrokerError as exc:  # lock lost, or dead-lettering a dead letter
            delivery.local.condition = _condition(exc.condition, exc.description)
            delivery.update(Delivery.REJECTED)
        delivery.settle()
        self._pump_all()

    # -- dispatch ------------------------------------------------------------------------

    def _pump_all(self) -> None:
        for link, info in list(self._consumers.values()):
            self._pump_link(link, info)

    def _pump_link(self, link: Any, info: _LinkInfo) -> None:
        """Send available messages while the client has credit."""
        if info.kind != "receive":
            return
        state = link.state
        if not (state & Endpoint.LOCAL_ACTIVE and state & Endpoint.REMOTE_ACTIVE):
            return
        while link.credit > 0:
            delivered = self.broker.receive(info.address, peek_lock=not info.receive_and_delete)
            if delivered is None:
                break
            token = delivered.lock_token
            # The lock token *is* the delivery tag: the SDK reads UUID(bytes_le=tag).
            tag = (token or uuid.uuid4()).bytes_le
            delivery = link.delivery(tag)
            if token is not None:
                delivery.sb_lock_token = token
            link.send(encode_delivered(delivered))
            link.advance()
            if info.receive_and_delete:
                delivery.settle()
        if link.drain_mode and link.credit > 0:
            link.drained()  # answer a drain request: nothing more to send

    # -- fault injection (run on the reactor thread via ``call``) -------------------------

    def drop_connections(self, *, graceful: bool = False) -> int:
        """End every client connection; returns how many. Abruptly by default (the socket
        is shut down, no AMQP close: a network failure). ``graceful`` sends a close with
        ``amqp:connection:forced`` instead, as Service Bus does when it recycles a
        connection; the SDK then closes its socket, which it does not after an abrupt
        loss (azure-servicebus 7.15 leaks that socket)."""
        if graceful:
            return self._close_connections()
        dropped = 0
        for conn in list(self._connections.values()):
            selectable = getattr(conn.transport, "_selectable", None)
            sock = getattr(selectable, "_delegate", None) if selectable is not None else None
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
                dropped += 1
            except OSError:
                pass  # already gone
        return dropped

    def pump(self) -> None:
        """Apply time and offer messages now (after ``advance_clock``, for instance)."""
        self.broker.tick()
        self._pump_all()

    def _close_connections(self) -> int:
        closed = 0
        for conn in list(self._connections.values()):
            connection = conn.connection
            if connection.state & Endpoint.LOCAL_CLOSED:
                continue
            connection.condition = _condition(
                "amqp:connection:forced", "The Service Bus emulator closed the connection."
            )
            connection.close()
            closed += 1
        return closed

    def shutdown(self, grace: float = 0.5) -> None:
        """Stop accepting, close every connection with an AMQP close (so clients close
        their sockets), give the close frames up to ``grace`` seconds to go out, then
        stop the reactor."""
        self._stopping = True
        if self._acceptor is not None:
            self._acceptor.close()
        self._close_connections()
        self._shutdown_deadline = time.monotonic() + grace
        self._finish_shutdown()

    def _finish_shutdown(self) -> None:
        pending = False
        for conn in self._connections.values():
            try:
                pending = pending or conn.transport.pending() > 0
            except Exception:  # noqa: BLE001 - a closed transport has nothing pending
                continue
        if pending and time.monotonic() < self._shutdown_deadline and self._container:
            self._container.schedule(0.01, self)  # back in on_timer_task
            return
        self.drop_connections()
        self._injector.close()
        if self._container is not None:
            self._container.stop()


def _condition(name: str, description: str) -> Condition:
    """An AMQP error (for a rejected outcome, a detach or a close). The info map must be
    present: the SDK indexes ``error[2]`` and proton omits a null info. On a rejected
    send its callback then fails and the send hangs until its timeout; on a close the
    SDK's handler dies with an IndexError."""
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def _has_session_filter(link: Any) -> bool:
    try:
        described = link.remote_source.filter.get_object()
    except Exception:  # noqa: BLE001 - an undecodable filter is simply not a session filter
        return False
    return bool(described) and "session" in str(described)


def _dead_letter_details(condition: Any) -> tuple[str | None, str | None]:
    """Reason and description from a ``rejected`` outcome's ``com.microsoft:dead-letter``
    error (the SDK puts them in the error's info map)."""
    if condition is None:
        return None, None
    info = to_plain(condition.info) if condition.info else {}
    reason = info.get("DeadLetterReason") if isinstance(info, dict) else None
    description = info.get("DeadLetterErrorDescription") if isinstance(info, dict) else None
    if description is None:
        description = condition.description
    return (
        None if reason is None else str(reason),
        None if description is None else str(description),
    )
