"""What the commands build: their settings (flags over the environment) and their clients.

Each command loads exactly the settings it uses, through the section loaders of
``ops_status.settings`` (the same validation the function app gets): ``check`` and
``watch`` read only the ARM settings, ``listen`` only Service Bus and the topic, ``submit``
the ARM settings, Service Bus and the intake queue, ``ls`` the ARM settings (to parse
follow-ups as the worker does), Service Bus and the polls queue. A missing or malformed
setting names the setting and the flag that can set it.

The CLI runs in pipelines and on laptops, not as a managed identity: unless
OPS_STATUS_CREDENTIAL or ``--credential`` says otherwise it uses DefaultAzureCredential.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from ops_status import settings as names
from ops_status.errors import ConfigurationError, CredentialError
from ops_status.observation import Observation, ReadFailure, ReadFailureKind
from ops_status.settings import (
    ArmSettings,
    IdentitySettings,
    ServiceBusSettings,
    load_arm_settings,
    load_entity_name,
    load_identity_settings,
    load_service_bus_settings,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.servicebus import ServiceBusClient

    from ops_status.handler import StatusReader
    from ops_status.request import WatchRequest

__all__ = [
    "arm_settings",
    "closed_after",
    "entity_name",
    "identity_settings",
    "service_bus_client",
    "service_bus_settings",
    "status_reader",
]

_T = TypeVar("_T")

_FLAGS = {
    names.INTAKE_QUEUE: "--queue",
    names.POLLS_QUEUE: "--queue",
    names.EVENTS_TOPIC: "--topic",
    names.SERVICE_BUS_NAMESPACE: "--namespace or --connection-string",
    names.SERVICE_BUS_CONNECTION: "--connection-string",
    names.ARM_ENDPOINT: "--arm-endpoint",
    names.CREDENTIAL: "--credential",
}


def arm_settings(args: argparse.Namespace) -> ArmSettings:
    """ARM endpoint, credential, HTTP timeouts and poll policy."""
    return _load(load_arm_settings, args)


def identity_settings(args: argparse.Namespace) -> IdentitySettings:
    """Credential and HTTP timeouts only (what a Service Bus namespace login needs)."""
    return _load(load_identity_settings, args)


def service_bus_settings(args: argparse.Namespace) -> ServiceBusSettings:
    """The namespace (``--namespace``) or a connection string (``--connection-string``)."""
    return _load(load_service_bus_settings, args)


def entity_name(args: argparse.Namespace, setting: str) -> str:
    """The intake queue (``--queue`` of submit), the polls queue (``--queue`` of ls) or
    the events topic (``--topic``)."""
    return _load(lambda environ, **overrides: load_entity_name(setting, environ, **overrides), args)


def _load(loader: Callable[..., _T], args: argparse.Namespace) -> _T:
    environ = dict(os.environ)
    overrides: dict[str, str] = {}
    if not environ.get(names.CREDENTIAL, "").strip():
        overrides[names.CREDENTIAL] = "default"
    for setting, value in (
        (names.CREDENTIAL, getattr(args, "credential", None)),
        (names.ARM_ENDPOINT, getattr(args, "arm_endpoint", None)),
        (names.INTAKE_QUEUE, getattr(args, "queue", None)),
        (names.POLLS_QUEUE, getattr(args, "polls_queue", None)),
        (names.EVENTS_TOPIC, getattr(args, "topic", None)),
    ):
        if value is not None:
            overrides[setting] = value
    # A flag naming the namespace one way hides the environment's other way.
    if getattr(args, "namespace", None) is not None:
        environ.pop(names.SERVICE_BUS_CONNECTION, None)
        overrides[names.SERVICE_BUS_NAMESPACE] = args.namespace
    if getattr(args, "connection_string", None) is not None:
        environ.pop(names.SERVICE_BUS_NAMESPACE, None)
        overrides[names.SERVICE_BUS_CONNECTION] = args.connection_string
    try:
        return loader(environ, **overrides)
    except ConfigurationError as exc:
        flag = _FLAGS.get(exc.setting)
        if flag is None:
            raise
        raise ConfigurationError(exc.setting, f"{exc.problem} (set it, or pass {flag})") from None


def credential_for(settings: IdentitySettings) -> TokenCredential:
    """The coalescing credential the function app uses, of the kind ``settings`` names."""
    from ops_status.credential import create_credential

    return create_credential(settings)


def service_bus_client(args: argparse.Namespace) -> ServiceBusClient:
    """A Service Bus client from the flags and environment (no I/O until first use)."""
    from ops_status.bootstrap import create_service_bus_client

    service_bus = service_bus_settings(args)
    credential = None
    if service_bus.service_bus_namespace is not None:
        credential = credential_for(identity_settings(args))
    return create_service_bus_client(service_bus, credential)


def status_reader(settings: ArmSettings) -> StatusReader:
    """The function's ArmClient, except that no token is an error at once: the function
    retries it for a grace period, but a pipeline step with a wrong login should fail
    now, not in 30 minutes."""
    from ops_status.bootstrap import create_status_reader

    return _TokenFailureIsFatal(create_status_reader(settings, credential_for(settings)))


class _TokenFailureIsFatal:
    """A status reader that raises ``CredentialError`` (exit 5) when no token could be had."""

    def __init__(self, inner: StatusReader) -> None:
        self._inner = inner

    def get_operation_status(self, request: WatchRequest) -> Observation:
        observation = self._inner.get_operation_status(request)
        if (
            isinstance(observation, ReadFailure)
            and observation.kind is ReadFailureKind.TOKEN_UNAVAILABLE
        ):
            raise CredentialError(observation.detail)
        return observation

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


@contextmanager
def closed_after(resource: _T) -> Iterator[_T]:
    """Yield ``resource`` and close it afterwards, if it can be closed (adapters can)."""
    try:
        yield resource
    finally:
        close = getattr(resource, "close", None)
        if callable(close):
            close()
