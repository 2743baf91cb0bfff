"""``ServiceBusEmulator``: the public face of the emulator (lifecycle, inspection, faults).

This module owns the reactor thread and the API tests and tools use. It wires a
``Broker`` (state) to an ``AmqpServer`` (wire) inside a proton ``Container`` running on a
background thread, and forwards inspection and fault-injection calls to whichever of
the two owns the state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from proton.reactor import Container

from .amqp import AmqpServer
from .auth import ROOT_KEY_NAME, Authorizer
from .broker import Broker, Clock, MessageView
from .config import MANAGE, AuthorizationRule, EmulatorConfig, QueueConfig, TopicConfig

__all__ = ["ServiceBusEmulator"]

_LOG = logging.getLogger(__name__)

#: The development-emulator connection string form the SDK recognises
#: (``UseDevelopmentEmulator=true``: plain AMQP, port taken from the endpoint).
_CONNECTION_STRING = (
    "Endpoint=sb://{host}:{port};SharedAccessKeyName={key_name};"
    "SharedAccessKey={key}{entity_path};UseDevelopmentEmulator=true"
)


class ServiceBusEmulator:
    """A local Azure Service Bus namespace speaking AMQP 1.0 on loopback.

    ::

        with ServiceBusEmulator(queues={"watches": QueueConfig()}) as emu:
            client = ServiceBusClient.from_connection_string(emu.connection_string)

    Entity paths accepted by the inspection and fault methods: ``"watches"``,
    ``"events"`` (topic), ``"events/subscriptions/all"``, and any of those with
    ``"/$DeadLetterQueue"`` appended (names are case-insensitive).

    Authorization is Service Bus's Shared Access Signature model: the root rule
    (``shared_access_key_name``/``shared_access_key``, Manage on the namespace), further
    namespace-level ``authorization_rules``, and entity-level rules on ``QueueConfig`` /
    ``TopicConfig``. SAS tokens are verified (signature, expiry, audience) and their
    rule's rights enforced on link attach and management operations. Any other token
    (a JWT from a ``TokenCredential``) may do everything unless ``token_rights`` lists
    it: ``{token: {entity path or "*": {"Send", "Listen", "Manage"}}}`` gives exactly
    those rights (a stand-in for Azure RBAC role assignments).
    """

    def __init__(
        self,
        queues: Mapping[str, QueueConfig] | None = None,
        topics: Mapping[str, TopicConfig] | None = None,
        *,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        shared_access_key_name: str = ROOT_KEY_NAME,
        shared_access_key: str = "SAS_KEY_VALUE",
        authorization_rules: Sequence[AuthorizationRule] = (),
        token_rights: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
    ) -> None:
        base = config or EmulatorConfig()
        extra = EmulatorConfig(
            queues=dict(queues or {}),
            topics=dict(topics or {}),
            authorization_rules=tuple(authorization_rules),
        )
        self.config = base.merged(extra)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.authorizer = Authorizer(
            self.config,
            AuthorizationRule(shared_access_key_name, shared_access_key, {MANAGE}),
            token_rights=token_rights,
        )
        self.broker = Broker(self.config, clock=clock)
        self._server = AmqpServer(self.broker, authorizer=self.authorizer)
        self._thread: threading.Thread | None = None
        self._container: Container | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> ServiceBusEmulator:
        """Listen and run the reactor on a background thread; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        # impl=None: skip Container's SSL set-up (client and server SSL domains, ~0.15 s of
        # loading CA stores per start) and its outgoing-connection overrides; a plain-AMQP
        # listener needs neither, and tests start one emulator each.
        self._container = Container(self._server, impl=None)
        self._port = self._server.listen(self._container, self.host, self._requested_port)
        self._thread = threading.Thread(
            target=self._run, name=f"servicebus-emulator-{self._port}", daemon=True
        )
        self._thread.start()
        if not self._server.ready.wait(10):
            raise RuntimeError("the emulator's reactor did not start")
        _LOG.info("Service Bus emulator listening on %s:%d", self.host, self._port)
        return self

    def _run(self) -> None:
        assert self._container is not None
        try:
            self._container.run()
        except Exception:  # noqa: BLE001 - a thread's error would otherwise vanish
            _LOG.exception("the emulator's reactor stopped with an error")
        finally:
            self._server.close_sockets()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every connection (an AMQP close, so SDK clients close
        their sockets too) and join the reactor thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._server.call(self._server.shutdown, wait=False)
        except Exception:  # noqa: BLE001 - the reactor is already gone
            _LOG.debug("shutdown call failed", exc_info=True)
        thread.join(timeout)
        if thread.is_alive():
            _LOG.warning("the emulator's reactor thread did not stop within %.1fs", timeout)

    def __enter__(self) -> ServiceBusEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- addresses --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("start() the emulator first")
        return self._port

    @property
    def fully_qualified_namespace(self) -> str:
        """``host:port``, for ``ServiceBusClient(fqns, credential, use_tls=False)``."""
        return f"{self.host}:{self.port}"

    @property
    def connection_string(self) -> str:
        """The root rule's connection string (Manage on the whole namespace)."""
        return self.connection_string_for(self.authorizer.root.key_name)

    def connection_string_for(self, rule_name: str, entity: str | None = None) -> str:
        """The connection string the portal shows for a rule: a namespace-level rule
        (``entity=None``), or a rule on queue/topic ``entity``, whose string carries
        ``EntityPath=<entity>`` as entity-level connection strings do. ``KeyError`` if
        there is no such rule there."""
        rule = self.authorizer.rule(rule_name, entity)
        return _CONNECTION_STRING.format(
            host=self.host,
            port=self.port,
            key_name=rule.key_name,
            key=rule.key,
            entity_path="" if entity is None else f";EntityPath={entity}",
        )

    # -- time -------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.broker.clock

    def advance_clock(self, seconds: float) -> None:
        """Move the broker's clock forward: due schedules are enqueued and expired locks
        released at once, before this returns. Real time keeps flowing as well."""
        self.broker.clock.advance(seconds)
        self._call(self._server.pump)

    # -- inspection (thread-safe) -----------------------------------------------------

    def active_count(self, entity: str) -> int:
        """Active messages (locked or not), like Service Bus's ActiveMessageCount."""
        return self.broker.active_count(entity)

    def locked_count(self, entity: str) -> int:
        return self.broker.locked_count(entity)

    def deferred_count(self, entity: str) -> int:
        return self.broker.deferred_count(entity)

    def scheduled_count(self, entity: str) -> int:
        """Scheduled messages held by a queue or topic (subscriptions hold none)."""
        return self.broker.scheduled_count(entity)

    def dead_letter_count(self, entity: str) -> int:
        return self.broker.dead_letter_count(entity)

    def peek_all(self, entity: str) -> list[MessageView]:
        return self.broker.peek_all(entity)

    def dead_letters(self, entity: str) -> list[MessageView]:
        return self.broker.dead_letters(entity)

    def sent_count(self, entity: str) -> int:
        return self.broker.sent_count(entity)

    def duplicates_dropped(self, entity: str) -> int:
        return self.broker.duplicates_dropped(entity)

    def refused_count(self, entity: str) -> int:
        """Sends rejected by ``refuse_sends`` so far."""
        return self.broker.refused_count(entity)

    @property
    def connections_opened(self) -> int:
        """AMQP connections accepted since start (each SDK sender/receiver opens one)."""
        with self._server.stats.lock:
            return self._server.stats.connections_opened

    @property
    def connections_active(self) -> int:
        with self._server.stats.lock:
            return self._server.stats.connections_active

    @property
    def cbs_tokens(self) -> list[tuple[str, str]]:
        """(audience, token) for every CBS put-token received, oldest first."""
        with self._server.stats.lock:
            return list(self._server.stats.cbs_tokens)

    @property
    def authorization_failures(self) -> list[tuple[str, str]]:
        """(entity path, reason) for every refused token or missing claim, oldest first.
        Reasons: ``InvalidSignature`` (wrong key, or a key name with no rule there),
        ``ExpiredToken``, ``InvalidAudience``, ``MalformedToken`` (put-token refused with
        401), or ``"Send claim"`` / ``"Listen claim"`` / ``"any claim"`` (a link or a
        management operation refused with ``amqp:unauthorized-access``)."""
        with self._server.stats.lock:
            return list(self._server.stats.authorization_failures)

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01
    ) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` passes; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    # -- fault injection ----------------------------------------------------------------

    def refuse_sends(
        self, entity: str, count: int | None = None, *, for_seconds: float | None = None
    ) -> None:
        """Reject the next ``count`` sends (transfers and schedule requests) to a queue or
        topic with ``amqp:internal-error``, and/or all of them for ``for_seconds``.
        The SDK treats it as transient: it retries, then raises ``ServiceBusError``."""
        self.broker.refuse_sends(entity, count=count, for_seconds=for_seconds)

    def drop_connections(self, *, graceful: bool = False) -> int:
        """End every client connection; returns how many. By default abruptly (socket
        shut down, no AMQP close), like a network failure; the SDK reconnects, though
        azure-servicebus 7.15 leaks the lost socket (a ResourceWarning when collected).
        ``graceful=True`` closes with ``amqp:connection:forced`` instead, as Service Bus
        does when it recycles a connection."""
        result: list[int] = []
        self._call(lambda: result.append(self._server.drop_connections(graceful=graceful)))
        return result[0] if result else 0

    def reject_cbs(self, reject: bool = True) -> None:
        """Answer CBS put-token with 401 (the SDK raises an authentication error)."""
        with self._server.stats.lock:
            self._server.stats.reject_cbs = reject

    def _call(self, fn: Callable[[], Any]) -> None:
        if not self.running:
            fn()  # not started (or stopped): nothing else touches the state
            return
        self._server.call(fn)
