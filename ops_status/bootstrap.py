"""bootstrap: the one place that assembles settings, credential, ARM client and outputs.

``get_dependencies()`` builds them lazily on the first message and keeps them for the
life of the process (one credential = one token cache, one HTTP session = reused
connections, one Service Bus client = one AMQP connection per entity). Nothing here
runs at import time. Tests call ``build_dependencies`` with fakes instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from azure.core.credentials import TokenCredential

from ops_status.arm import ArmClient
from ops_status.clock import utcnow
from ops_status.credential import create_credential
from ops_status.handler import Dependencies, StatusReader
from ops_status.servicebus import Outputs, ServiceBusOutputClient
from ops_status.settings import Settings, load_settings

__all__ = ["build_dependencies", "get_dependencies", "reset_dependencies", "set_dependencies"]

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
        for resource in (current.status_reader, current.outputs):
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
) -> Dependencies:
    """Wire real adapters for ``settings``; any of them can be passed in instead."""
    if credential is None and (status_reader is None or outputs is None):
        credential = create_credential(settings)
    if status_reader is None:
        assert credential is not None
        status_reader = ArmClient(
            settings.arm_endpoint,
            credential,
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
        )
    if outputs is None:
        if settings.service_bus_namespace:
            assert credential is not None
            outputs = ServiceBusOutputClient.from_namespace(
                settings.service_bus_namespace,
                credential,
                queue=settings.watch_queue,
                topic=settings.events_topic,
            )
        else:
            assert settings.service_bus_connection_string is not None
            outputs = ServiceBusOutputClient.from_connection_string(
                settings.service_bus_connection_string,
                queue=settings.watch_queue,
                topic=settings.events_topic,
            )
    return Dependencies(
        settings=settings, status_reader=status_reader, outputs=outputs, clock=clock
    )
