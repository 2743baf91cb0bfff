"""bootstrap: the one place that assembles settings, credential, ARM client and outputs.

``get_dependencies()`` builds them lazily on the first message and keeps them for the
life of the process (one credential = one token cache, one HTTP session = reused
connections, one Service Bus client = one AMQP connection per entity). Nothing here
runs at import time. Tests call ``build_dependencies`` with fakes instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from azure.core.credentials import TokenCredential
from azure.servicebus import ServiceBusClient

from ops_status.arm import ArmClient
from ops_status.clock import utcnow
from ops_status.credential import create_credential
from ops_status.handler import Dependencies, StatusReader
from ops_status.servicebus import Outputs, ServiceBusOutputClient
from ops_status.settings import (
    ArmSettings,
    ServiceBusSettings,
    Settings,
    is_loopback_host,
    load_settings,
)

__all__ = [
    "build_dependencies",
    "create_service_bus_client",
    "create_status_reader",
    "get_dependencies",
    "reset_dependencies",
    "set_dependencies",
]

_lock = threading.Lock()
_dependencies: Dependencies | None = None


def get_dependencies(settings: Settings | None = None) -> Dependencies:
    """The process-wide dependencies, built on first call (thread-safe)."""
    global _dependencies  # noqa: PLW0603 - the process-wide singleton is the point
    if _dependencies is None:
        with _lock:
            if _dependencies is None:
                _dependencies = build_dependencies(settings or load_settings())
    return _dependencies


def set_dependencies(dependencies: Dependencies) -> None:
    """Install ``dependencies`` as the process-wide ones (tests, or a host that wires its own)."""
    global _dependencies  # noqa: PLW0603
    with _lock:
        _dependencies = dependencies


def reset_dependencies() -> None:
    """Forget the process-wide dependencies (closing their connections). For tests and shutdown."""
    global _dependencies
    with _lock:
        current, _dependencies = _dependencies, None
    if current is not None:
        for resource in (current.status_reader, current.outputs, current.credential):
            close = getattr(resource, "close", None)
            if callable(close):
                close()


def build_dependencies(
    settings: Settings,
    *,
    credential: TokenCredential | None = None,
    status_reader: StatusReader | None = None,
    outputs: Outputs | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Dependencies:
    """Wire real adapters for ``settings``; any of them can be passed in instead."""
    needs_credential = status_reader is None or (
        outputs is None and settings.service_bus_namespace is not None
    )
    if credential is None and needs_credential:
        credential = create_credential(settings)
    if status_reader is None:
        assert credential is not None
        status_reader = create_status_reader(settings, credential)
    if outputs is None:
        outputs = ServiceBusOutputClient(
            create_service_bus_client(settings, credential),
            polls_queue=settings.polls_queue,
            topic=settings.events_topic,
        )
    return Dependencies(
        settings=settings,
        status_reader=status_reader,
        outputs=outputs,
        clock=clock,
        sleep=sleep,
        credential=credential,
    )


def create_status_reader(settings: ArmSettings, credential: TokenCredential) -> ArmClient:
    """The ARM client for the configured endpoint and timeouts. No I/O until the first read."""
    return ArmClient(
        settings.arm_endpoint,
        credential,
        connect_timeout=settings.http_connect_timeout,
        read_timeout=settings.http_read_timeout,
    )


def create_service_bus_client(
    settings: ServiceBusSettings, credential: TokenCredential | None
) -> ServiceBusClient:
    """A client for the configured namespace: identity-based, or by connection string.

    ``credential`` is required for a namespace and unused with a connection string. No
    I/O: the SDK connects when a sender or receiver is first used.
    """
    if settings.service_bus_namespace:
        if credential is None:
            raise ValueError("a Service Bus namespace needs a credential")
        host = settings.service_bus_namespace.rsplit(":", 1)[0]
        # Plain AMQP only towards a local emulator; everything else is AMQPS.
        return ServiceBusClient(
            settings.service_bus_namespace, credential, use_tls=not is_loopback_host(host)
        )
    assert settings.service_bus_connection_string is not None
    return ServiceBusClient.from_connection_string(settings.service_bus_connection_string)
