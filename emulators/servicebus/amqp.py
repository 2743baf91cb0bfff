"""The AMQP 1.0 side of the emulator: a python-qpid-proton reactor handler.

This module owns the *wire*: accepting connections (SASL ANONYMOUS), the CBS node
(``$cbs`` put-token, verified by ``auth.Authorizer``; the grants it gives are kept per
connection and checked when links attach and per management operation), management
nodes (``<entity>/$management``), sender links (client sends into a queue or topic) and
receiver links (client receives from a queue, subscription or dead-letter queue), credit
and dispositions. Every decision about messages is delegated to ``Broker`` (state) and
``management`` (request semantics); message bytes are built by ``codec``.

Why over 400 lines: it keeps the handler itself, one class, because proton dispatches
every event by name to one handler object whose methods share the reactor-thread state
(connections, consumers, credit): lifecycle, connections, link attach and detach,
offering messages to receivers, fault injection and shutdown. What a transfer or a
disposition does is in ``deliveries``, the ``$cbs`` and ``$management`` nodes in
``nodes``, the per-connection and per-link records in ``connections`` and the
reactor-loop guard in ``reactor``.

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
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from proton import Delivery, Endpoint, Handler, Link, Terminus
from proton.reactor import ApplicationEvent, Container, EventInjector

from .auth import ROOT_KEY_NAME, Authorizer, UnauthorizedError
from .broker import Broker, BrokerError, NotAllowedError, entity_path
from .config import LISTEN, SEND, AuthorizationRule, EmulatorConfig
from .connections import CBS_NODE, Connection, LinkInfo, ServerStats
from .connections import condition as _condition
from .deliveries import accept_transfer, apply_disposition
from .management import encode_delivered
from .nodes import answer_management, answer_put_token, flush_replies
from .reactor import guarded, quiet_proton_disconnects

__all__ = ["AmqpServer", "ServerStats"]

_LOG = logging.getLogger(__name__)

#: Credit the broker keeps open on each link a client sends on.
_CREDIT_WINDOW = 500
#: How often the reactor applies the passage of time (schedules, lock expiry, TTL).
TICK_SECONDS = 0.025


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
        quiet_proton_disconnects()
        self.broker = broker
        self.authorizer = authorizer or Authorizer(
            EmulatorConfig(), AuthorizationRule(ROOT_KEY_NAME, "SAS_KEY_VALUE", {"Manage"})
        )
        #: ``host:port`` as clients address it (set by ``listen``), for error texts.
        self.namespace = "localhost"
        self.stats = ServerStats()
        self.container_id = container_id
        self.ready = threading.Event()
        self._connections: dict[int, Connection] = {}
        #: every accepted socket not yet known closed (for ``close_sockets``).
        self._sockets: list[socket.socket] = []
        self._consumers: dict[int, tuple[Any, LinkInfo]] = {}
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

    @guarded
    def on_reactor_init(self, event: Any) -> None:
        event.container.schedule(TICK_SECONDS, self)
        self.ready.set()

    @guarded
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

    @guarded
    def on_connection_bound(self, event: Any) -> None:
        transport = event.transport
        sasl = transport.sasl()
        sasl.allowed_mechs("ANONYMOUS")  # what the SDK offers before CBS; nothing else
        selectable = getattr(transport, "_selectable", None)  # set by proton's Acceptor
        if selectable is not None:
            self._sockets = [sock for sock in self._sockets if sock.fileno() != -1]
            self._sockets.append(selectable._delegate)
        self._next_id += 1
        conn = Connection(self._next_id, event.connection, transport)
        event.connection.sb_connection = conn.ident
        self._connections[conn.ident] = conn
        with self.stats.lock:
            self.stats.connections_opened += 1
            self.stats.connections_active = len(self._connections)
        _LOG.debug("connection %d accepted", conn.ident)

    @guarded
    def on_connection_remote_open(self, event: Any) -> None:
        connection = event.connection
        if connection.state & Endpoint.LOCAL_UNINIT:
            connection.container = self.container_id
            connection.open()

    @guarded
    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    @guarded
    def on_connection_remote_close(self, event: Any) -> None:
        if not event.connection.state & Endpoint.LOCAL_CLOSED:
            event.connection.close()
        self._forget_connection(event.connection)

    @guarded
    def on_session_remote_close(self, event: Any) -> None:
        if not event.session.state & Endpoint.LOCAL_CLOSED:
            event.session.close()

    @guarded
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

    @guarded
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

    def _attach_outgoing(self, link: Any, conn: Connection) -> LinkInfo:
        """The client attached a receiver: we send from ``source``."""
        source = link.remote_source.address or ""
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        if source == CBS_NODE:
            conn.reply_links[source] = link
            return LinkInfo("cbs-reply", source, conn.ident)
        path = entity_path(source)
        if path.lower().endswith("/$management"):
            self._authorize(conn, path, None)
            self.broker.check_management(path)
            conn.reply_links[path.lower()] = link
            return LinkInfo("mgmt-reply", path.lower(), conn.ident)
        # Authorization before existence, as on Service Bus: no probing for entity names.
        self._authorize(conn, path, LISTEN)
        if link.remote_source.filter is not None and _has_session_filter(link):
            raise NotAllowedError("The emulator does not support session-enabled entities.")
        store = self.broker.check_receivable(source)
        self._next_id += 1
        info = LinkInfo(
            "receive",
            store,
            conn.ident,
            receive_and_delete=link.remote_snd_settle_mode == Link.SND_SETTLED,
            consumer=self._next_id,
        )
        self._consumers[self._next_id] = (link, info)
        return info

    def _attach_incoming(self, link: Any, conn: Connection) -> LinkInfo:
        """The client attached a sender: we receive into ``target``."""
        target = link.remote_target.address or ""
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        if target == CBS_NODE:
            return LinkInfo("cbs-request", target, conn.ident)
        path = entity_path(target)
        if path.lower().endswith("/$management"):
            self._authorize(conn, path, None)
            self.broker.check_management(path)
            return LinkInfo("mgmt-request", path.lower(), conn.ident)
        self._authorize(conn, path, SEND)
        entity = self.broker.check_sendable(target)
        # Advertised so the SDK sizes batches to the Standard-tier limit.
        link.max_message_size = self.broker.max_message_size(target)
        return LinkInfo("send", entity, conn.ident)

    @guarded
    def on_link_remote_close(self, event: Any) -> None:
        link = event.link
        info: LinkInfo | None = getattr(link, "sb_link", None)
        if info is not None:
            if info.consumer is not None:
                self._consumers.pop(info.consumer, None)
            conn = self._connections.get(info.connection)
            if conn is not None and info.kind in ("cbs-reply", "mgmt-reply"):
                conn.reply_links.pop(info.address, None)
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.close()

    on_link_remote_detach = on_link_remote_close

    @guarded
    def on_link_flow(self, event: Any) -> None:
        link = event.link
        info: LinkInfo | None = getattr(link, "sb_link", None)
        if info is None or not link.is_sender:
            return
        if info.kind == "receive":
            self._pump_link(link, info)
        elif info.kind in ("cbs-reply", "mgmt-reply"):
            conn = self._connections.get(info.connection)
            if conn is not None:
                flush_replies(conn, info.address)

    # -- deliveries ----------------------------------------------------------------------

    @guarded
    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        link = delivery.link
        if link.connection.state & Endpoint.LOCAL_CLOSED:
            # We closed this connection (drop or stop): like a broker that has sent its
            # close, act on nothing the client still sends (a completion arriving now must
            # not count, the client never sees its outcome).
            return
        info: LinkInfo | None = getattr(link, "sb_link", None)
        if info is None:
            if delivery.link.is_receiver and not delivery.partial:
                delivery.settle()
            return
        if link.is_sender:
            if apply_disposition(self.broker, delivery, receive_and_delete=info.receive_and_delete):
                self._pump_all()
            return
        if delivery.aborted:
            delivery.settle()
            return
        if not delivery.readable or delivery.partial:
            return  # proton keeps buffering a multi-frame transfer until it is complete
        raw = bytes(link.recv(delivery.pending) or b"")
        link.advance()
        if info.kind == "send":
            if accept_transfer(self.broker, delivery, info.address, raw):
                self._pump_all()
        elif info.kind == "cbs-request":
            self._on_put_token(delivery, info, raw)
        elif info.kind == "mgmt-request":
            self._on_management_request(delivery, info, raw)
        else:  # pragma: no cover - receiver kinds only
            delivery.settle()
        if link.credit < _CREDIT_WINDOW // 2 and not link.state & Endpoint.LOCAL_CLOSED:
            link.flow(_CREDIT_WINDOW - link.credit)

    def _on_put_token(self, delivery: Any, info: LinkInfo, raw: bytes) -> None:
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        conn = self._connections.get(info.connection)
        answer_put_token(conn, raw, authorizer=self.authorizer, stats=self.stats)

    def _on_management_request(self, delivery: Any, info: LinkInfo, raw: bytes) -> None:
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        conn = self._connections.get(info.connection)
        answered = answer_management(
            conn, info.address, raw, broker=self.broker, authorize=self._authorize
        )
        if answered:
            self._pump_all()  # abandon/defer/cancel may have changed what is receivable

    def _authorize(self, conn: Connection, path: str, right: str | None) -> None:
        """Raise ``UnauthorizedError`` unless this connection's tokens give ``right`` on
        ``path`` (``None``: any right). Records the refusal for ``authorization_failures``."""
        try:
            self.authorizer.require(conn.grants.values(), path, right, namespace=self.namespace)
        except UnauthorizedError:
            with self.stats.lock:
                self.stats.authorization_failures.append((path.lower(), f"{right or 'any'} claim"))
            raise

    # -- dispatch ------------------------------------------------------------------------

    def _pump_all(self) -> None:
        for link, info in list(self._consumers.values()):
            self._pump_link(link, info)

    def _pump_link(self, link: Any, info: LinkInfo) -> None:
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


def _has_session_filter(link: Any) -> bool:
    try:
        described = link.remote_source.filter.get_object()
    except Exception:  # noqa: BLE001 - an undecodable filter is simply not a session filter
        return False
    return bool(described) and "session" in str(described)
