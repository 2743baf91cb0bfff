"""Settings: every app setting ops-status reads, validated once, in one place.

``load_settings()`` turns the environment (Functions app settings, or a worker's
environment) into a frozen ``Settings`` object, or raises ``ConfigurationError`` naming
the first setting that is missing or malformed. Explicit keyword arguments win over the
environment, so tests and the CLI never need to mutate ``os.environ``.

The names below are the public contract with ``local.settings.sample.json``, the README
and the deployment template; ``SETTINGS_WITH_DEFAULTS`` lists every optional setting
with its default so those documents can be checked against the code.

Why it is long (~480 lines): every setting the app reads is named, parsed and validated
here and nowhere else (the house rule), so it grows with the settings table; the loaders
per concern (ARM, identity, Service Bus, telemetry) share one ``_Source``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ops_status.errors import ConfigurationError
from ops_status.policy import PollPolicy

__all__ = [
    "REQUIRED_SETTINGS",
    "SETTINGS_WITH_DEFAULTS",
    "ArmSettings",
    "IdentitySettings",
    "ServiceBusSettings",
    "Settings",
    "TelemetrySettings",
    "load_arm_settings",
    "load_entity_name",
    "load_identity_settings",
    "load_service_bus_settings",
    "load_settings",
    "load_telemetry_settings",
]

# Service Bus connection: the Functions trigger and our own SDK client read the same
# settings, so one identity-based connection (or one connection string) serves both.
SERVICE_BUS_CONNECTION = "ServiceBusConnection"
SERVICE_BUS_NAMESPACE = "ServiceBusConnection__fullyQualifiedNamespace"
# The trigger's user-assigned identity; the app's own credential falls back to it.
SERVICE_BUS_CLIENT_ID = "ServiceBusConnection__clientId"
# Two queues, one trust boundary: pipelines may send only to the intake queue; the
# polls queue carries the product's own follow-ups and only the app's identity sends there.
INTAKE_QUEUE = "OPS_STATUS_INTAKE_QUEUE"
POLLS_QUEUE = "OPS_STATUS_POLLS_QUEUE"
EVENTS_TOPIC = "OPS_STATUS_EVENTS_TOPIC"

ARM_ENDPOINT = "OPS_STATUS_ARM_ENDPOINT"
CREDENTIAL = "OPS_STATUS_CREDENTIAL"
CLIENT_ID = "AZURE_CLIENT_ID"
HTTP_CONNECT_TIMEOUT = "OPS_STATUS_HTTP_CONNECT_TIMEOUT"
HTTP_READ_TIMEOUT = "OPS_STATUS_HTTP_READ_TIMEOUT"

DEFAULT_TIMEOUT = "OPS_STATUS_DEFAULT_TIMEOUT"
MAX_TIMEOUT = "OPS_STATUS_MAX_TIMEOUT"
POLL_MIN_DELAY = "OPS_STATUS_POLL_MIN_DELAY"
POLL_MAX_DELAY = "OPS_STATUS_POLL_MAX_DELAY"
POLL_GROWTH = "OPS_STATUS_POLL_GROWTH"
POLL_JITTER = "OPS_STATUS_POLL_JITTER"
POLL_LEAD = "OPS_STATUS_POLL_LEAD"
READ_BUDGET_MAX_DELAY = "OPS_STATUS_READ_BUDGET_MAX_DELAY"
RETRY_AFTER_MAX = "OPS_STATUS_RETRY_AFTER_MAX"
NOT_FOUND_GRACE = "OPS_STATUS_NOT_FOUND_GRACE"
AUTH_FAILURE_GRACE = "OPS_STATUS_AUTH_FAILURE_GRACE"
MAX_TRANSIENT_FAILURES = "OPS_STATUS_MAX_TRANSIENT_FAILURES"
TOKEN_FAILURE_GRACE = "OPS_STATUS_TOKEN_FAILURE_GRACE"  # noqa: S105 - a setting name
SEND_RETRY_DELAY = "OPS_STATUS_SEND_RETRY_DELAY"

# Telemetry export (ops_status/telemetry.py): the names Azure Functions and OpenTelemetry
# document, so the host, the Python worker, the distro and the exporters read the same ones.
APPINSIGHTS_CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
APPINSIGHTS_AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"

# Seconds per delivery a handler waits before giving a failed send back to Service Bus
# (delivery n waits n x this): abandon redelivers at once, so without it MaxDeliveryCount
# (10) is spent in seconds. 15 s spaces ten deliveries over 15 x (1 + ... + 9) = 675 s.
DEFAULT_SEND_RETRY_DELAY = 15.0
# The wait is capped well inside functionTimeout and the host's lock renewal, and never
# runs past what is left of this run (minus a margin for the abandon itself).
MAX_SEND_RETRY_WAIT = 180.0
FUNCTION_TIMEOUT = 300.0
"""host.json ``functionTimeout`` (tests/unit/test_settings.py checks that they agree)."""
RUN_MARGIN = 30.0
# One send attempt series (the SDK retries inside it) may take at most this long.
SEND_TIMEOUT = 30.0

_DEFAULT_POLICY = PollPolicy()

# Settings with no default. (ServiceBusConnection, a connection string, may stand in for
# the namespace, for emulators.)
REQUIRED_SETTINGS = (INTAKE_QUEUE, POLLS_QUEUE, EVENTS_TOPIC, SERVICE_BUS_NAMESPACE)

# Every optional setting and the default used when it is absent (as the string an app
# setting would hold). Required settings are not listed: see ``load_settings``.
SETTINGS_WITH_DEFAULTS: Mapping[str, str] = {
    ARM_ENDPOINT: "https://management.azure.com",
    CREDENTIAL: "managedidentity",
    CLIENT_ID: "",
    HTTP_CONNECT_TIMEOUT: "5",
    HTTP_READ_TIMEOUT: "30",
    DEFAULT_TIMEOUT: f"{_DEFAULT_POLICY.default_timeout:g}",
    MAX_TIMEOUT: f"{_DEFAULT_POLICY.max_timeout:g}",
    POLL_MIN_DELAY: f"{_DEFAULT_POLICY.min_delay:g}",
    POLL_MAX_DELAY: f"{_DEFAULT_POLICY.max_delay:g}",
    POLL_GROWTH: f"{_DEFAULT_POLICY.growth:g}",
    POLL_JITTER: f"{_DEFAULT_POLICY.jitter:g}",
    POLL_LEAD: f"{_DEFAULT_POLICY.lead:g}",
    READ_BUDGET_MAX_DELAY: f"{_DEFAULT_POLICY.read_budget_max_delay:g}",
    RETRY_AFTER_MAX: f"{_DEFAULT_POLICY.retry_after_max:g}",
    NOT_FOUND_GRACE: f"{_DEFAULT_POLICY.not_found_grace:g}",
    AUTH_FAILURE_GRACE: f"{_DEFAULT_POLICY.auth_failure_grace:g}",
    MAX_TRANSIENT_FAILURES: f"{_DEFAULT_POLICY.max_transient_failures}",
    TOKEN_FAILURE_GRACE: f"{_DEFAULT_POLICY.token_failure_grace:g}",
    SEND_RETRY_DELAY: f"{DEFAULT_SEND_RETRY_DELAY:g}",
    APPINSIGHTS_CONNECTION_STRING: "",
    APPINSIGHTS_AUTHENTICATION_STRING: "",
    OTLP_ENDPOINT: "",
    OTLP_PROTOCOL: "http/protobuf",
}

CredentialKind = Literal["managedidentity", "default"]
_ENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/~]{0,259}")
_LOOPBACK_NAMES = {"localhost"}
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@dataclass(frozen=True, kw_only=True)
class IdentitySettings:
    """Which Azure credential to use, and the HTTP timeouts its token calls get."""

    credential: CredentialKind = "managedidentity"
    client_id: str | None = None
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ArmSettings(IdentitySettings):
    """What reading an operation's status needs: the ARM endpoint and the poll policy."""

    arm_endpoint: str = SETTINGS_WITH_DEFAULTS[ARM_ENDPOINT]
    policy: PollPolicy = field(default_factory=PollPolicy)

    @property
    def arm_scope(self) -> str:
        """The token scope for the configured ARM endpoint (sovereign clouds included)."""
        return self.arm_endpoint + "/.default"


@dataclass(frozen=True, kw_only=True)
class ServiceBusSettings:
    """Where the Service Bus namespace is: by name (with a credential) or a connection string."""

    service_bus_namespace: str | None = None
    # The connection string may carry a SAS key: never in a repr.
    service_bus_connection_string: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class TelemetrySettings:
    """Where traces, metrics and logs are exported to; nothing is exported when both are unset."""

    # Not a secret, but it names the resource telemetry goes to: kept out of reprs too.
    appinsights_connection_string: str | None = field(default=None, repr=False)
    appinsights_entra: bool = False
    """``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` says ``Authorization=AAD``: send with a
    managed-identity token (the component refuses instrumentation-key-only telemetry)."""
    appinsights_client_id: str | None = None
    """The user-assigned identity for that token (``ClientId=``); None: system-assigned."""
    otlp_endpoint: str | None = None

    @property
    def exports(self) -> bool:
        return self.appinsights_connection_string is not None or self.otlp_endpoint is not None


@dataclass(frozen=True, kw_only=True)
class Settings(ArmSettings, ServiceBusSettings):
    """Validated configuration of the function app or worker. Build it with ``load_settings()``."""

    intake_queue: str
    """Where pipelines send watch requests (every message there is a fresh watch)."""
    polls_queue: str
    """Where the product schedules its own follow-ups (only the app's identity sends here)."""
    events_topic: str
    send_retry_delay: float = DEFAULT_SEND_RETRY_DELAY
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: str) -> Settings:
    """Read and validate every setting, or raise ``ConfigurationError`` naming the bad one.

    ``overrides`` are keyed by setting name (``load_settings(OPS_STATUS_INTAKE_QUEUE="q")``)
    and beat the environment. The CLI's commands, which need only parts of this, call the
    section loaders below instead (``load_arm_settings`` and friends): every setting is
    still validated by one function, whichever entry point reads it.

    Example::

        settings = load_settings()            # in function_app.py, at start-up
        settings.policy.min_delay             # validated, typed
    """
    source = _Source(environ, overrides)
    intake_queue = load_entity_name(INTAKE_QUEUE, environ, **overrides)
    polls_queue = load_entity_name(POLLS_QUEUE, environ, **overrides)
    if polls_queue.lower() == intake_queue.lower():
        raise ConfigurationError(
            POLLS_QUEUE,
            f"must differ from {INTAKE_QUEUE}: poll state is trusted only on a queue that "
            "pipelines cannot send to",
        )
    events_topic = load_entity_name(EVENTS_TOPIC, environ, **overrides)
    service_bus = load_service_bus_settings(environ, **overrides)
    arm = load_arm_settings(environ, **overrides)
    return Settings(
        intake_queue=intake_queue,
        polls_queue=polls_queue,
        events_topic=events_topic,
        service_bus_namespace=service_bus.service_bus_namespace,
        service_bus_connection_string=service_bus.service_bus_connection_string,
        credential=arm.credential,
        client_id=arm.client_id,
        http_connect_timeout=arm.http_connect_timeout,
        http_read_timeout=arm.http_read_timeout,
        arm_endpoint=arm.arm_endpoint,
        policy=arm.policy,
        send_retry_delay=source.number(SEND_RETRY_DELAY, minimum=0, maximum=60),
        telemetry=load_telemetry_settings(environ, **overrides),
    )


def load_entity_name(
    setting: str, environ: Mapping[str, str] | None = None, **overrides: str
) -> str:
    """One required Service Bus entity name (a queue or the topic)."""
    value = _Source(environ, overrides).required(setting)
    if not _ENTITY_NAME.fullmatch(value):
        raise ConfigurationError(setting, f"is not a valid Service Bus entity name: {value!r}")
    return value


def load_service_bus_settings(
    environ: Mapping[str, str] | None = None, **overrides: str
) -> ServiceBusSettings:
    """The namespace (identity-based) or, for an emulator, a connection string."""
    source = _Source(environ, overrides)
    namespace = source.get(SERVICE_BUS_NAMESPACE) or None
    connection_string = source.get(SERVICE_BUS_CONNECTION) or None
    if namespace is None and connection_string is None:
        raise ConfigurationError(
            SERVICE_BUS_NAMESPACE,
            f"is required (or {SERVICE_BUS_CONNECTION}: a connection string, for an emulator)",
        )
    if namespace is not None:
        return ServiceBusSettings(service_bus_namespace=namespace)
    assert connection_string is not None
    _check_connection_string(connection_string)
    return ServiceBusSettings(service_bus_connection_string=connection_string)


def load_identity_settings(
    environ: Mapping[str, str] | None = None, **overrides: str
) -> IdentitySettings:
    """The credential kind, the identity's client id and the HTTP timeouts."""
    source = _Source(environ, overrides)
    client_id = source.get(CLIENT_ID) or None
    trigger_client_id = source.get(SERVICE_BUS_CLIENT_ID) or None
    if client_id and trigger_client_id and client_id != trigger_client_id:
        raise ConfigurationError(
            CLIENT_ID,
            f"differs from {SERVICE_BUS_CLIENT_ID}: the trigger and the app must use one identity",
        )
    credential = source.optional(CREDENTIAL).lower()
    if credential not in ("managedidentity", "default"):
        raise ConfigurationError(
            CREDENTIAL, f"must be 'managedidentity' or 'default', got {credential!r}"
        )
    return IdentitySettings(
        credential=credential,  # type: ignore[arg-type]  # checked just above
        client_id=client_id or trigger_client_id,
        http_connect_timeout=source.number(HTTP_CONNECT_TIMEOUT, minimum=0.1, maximum=120),
        http_read_timeout=source.number(HTTP_READ_TIMEOUT, minimum=0.1, maximum=300),
    )


def load_arm_settings(environ: Mapping[str, str] | None = None, **overrides: str) -> ArmSettings:
    """The identity settings plus the ARM endpoint and the poll policy (all have defaults)."""
    source = _Source(environ, overrides)
    identity = load_identity_settings(environ, **overrides)
    number = source.number
    policy = PollPolicy(
        min_delay=number(POLL_MIN_DELAY, minimum=1, maximum=3600),
        max_delay=number(POLL_MAX_DELAY, minimum=1, maximum=3600),
        growth=number(POLL_GROWTH, minimum=0, maximum=10),
        jitter=number(POLL_JITTER, minimum=0, maximum=0.5),
        lead=number(POLL_LEAD, minimum=0, maximum=60),
        read_budget_max_delay=number(READ_BUDGET_MAX_DELAY, minimum=10, maximum=3600),
        retry_after_max=number(RETRY_AFTER_MAX, minimum=1, maximum=3600),
        default_timeout=number(DEFAULT_TIMEOUT, minimum=10, maximum=7 * 86400),
        max_timeout=number(MAX_TIMEOUT, minimum=10, maximum=7 * 86400),
        not_found_grace=number(NOT_FOUND_GRACE, minimum=0, maximum=86400),
        auth_failure_grace=number(AUTH_FAILURE_GRACE, minimum=0, maximum=86400),
        max_transient_failures=int(number(MAX_TRANSIENT_FAILURES, minimum=0, maximum=1000)),
        token_failure_grace=number(TOKEN_FAILURE_GRACE, minimum=0, maximum=86400),
    )
    if policy.max_delay < policy.min_delay:
        raise ConfigurationError(POLL_MAX_DELAY, f"must not be below {POLL_MIN_DELAY}")
    if policy.default_timeout > policy.max_timeout:
        raise ConfigurationError(DEFAULT_TIMEOUT, f"must not exceed {MAX_TIMEOUT}")
    return ArmSettings(
        credential=identity.credential,
        client_id=identity.client_id,
        http_connect_timeout=identity.http_connect_timeout,
        http_read_timeout=identity.http_read_timeout,
        arm_endpoint=_arm_endpoint(source.optional(ARM_ENDPOINT)),
        policy=policy,
    )


def load_telemetry_settings(
    environ: Mapping[str, str] | None = None, **overrides: str
) -> TelemetrySettings:
    """Application Insights and OTLP export settings; both absent (the default): no export."""
    source = _Source(environ, overrides)
    connection_string = source.get(APPINSIGHTS_CONNECTION_STRING) or None
    if connection_string is not None:
        _check_appinsights_connection_string(connection_string)
    entra, client_id = _appinsights_authentication(source.get(APPINSIGHTS_AUTHENTICATION_STRING))
    own_client_id = source.get(CLIENT_ID) or None
    if client_id and own_client_id and client_id.lower() != own_client_id.lower():
        raise ConfigurationError(
            APPINSIGHTS_AUTHENTICATION_STRING,
            f"names ClientId {client_id}, but {CLIENT_ID} is {own_client_id}: one identity",
        )
    endpoint = source.get(OTLP_ENDPOINT) or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                OTLP_ENDPOINT, f"must be an absolute http(s) URL, got {endpoint!r}"
            )
        protocol = source.optional(OTLP_PROTOCOL)
        if protocol != "http/protobuf":
            raise ConfigurationError(
                OTLP_PROTOCOL, f"must be 'http/protobuf' (the exporter installed), got {protocol!r}"
            )
    return TelemetrySettings(
        appinsights_connection_string=connection_string,
        appinsights_entra=entra,
        appinsights_client_id=client_id,
        otlp_endpoint=endpoint,
    )


def _check_appinsights_connection_string(value: str) -> None:
    fields = {
        key.strip().lower(): text.strip()
        for key, _, text in (part.partition("=") for part in value.split(";") if part.strip())
    }
    if not fields.get("instrumentationkey"):
        raise ConfigurationError(
            APPINSIGHTS_CONNECTION_STRING,
            "is not an Application Insights connection string (no InstrumentationKey=...)",
        )
    ingestion = fields.get("ingestionendpoint")
    if ingestion:
        parts = urlsplit(ingestion)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise ConfigurationError(
                APPINSIGHTS_CONNECTION_STRING, "has an IngestionEndpoint that is not an http(s) URL"
            )
        if parts.scheme == "http" and not is_loopback_host(host):
            raise ConfigurationError(
                APPINSIGHTS_CONNECTION_STRING,
                "has a plain-http IngestionEndpoint (allowed only on loopback, for tests)",
            )


def _appinsights_authentication(raw: str) -> tuple[bool, str | None]:
    """``Authorization=AAD[;ClientId=<guid>]`` (the documented form) -> (Entra, client id)."""
    if not raw:
        return False, None
    fields: dict[str, str] = {}
    for part in (part.strip() for part in raw.split(";")):
        key, equals, text = part.partition("=")
        if not part:
            continue
        if not equals or key.strip().lower() not in ("authorization", "clientid"):
            raise ConfigurationError(
                APPINSIGHTS_AUTHENTICATION_STRING,
                f"must be 'Authorization=AAD' or 'Authorization=AAD;ClientId=<guid>', got {raw!r}",
            )
        fields[key.strip().lower()] = text.strip()
    if fields.get("authorization") != "AAD":
        raise ConfigurationError(
            APPINSIGHTS_AUTHENTICATION_STRING, f"must contain Authorization=AAD, got {raw!r}"
        )
    client_id = fields.get("clientid") or None
    if client_id is not None and not _GUID.fullmatch(client_id):
        raise ConfigurationError(
            APPINSIGHTS_AUTHENTICATION_STRING, f"has a ClientId that is not a GUID: {client_id!r}"
        )
    return True, client_id


class _Source:
    """The environment with the overrides on top, read the one way every loader reads it."""

    def __init__(self, environ: Mapping[str, str] | None, overrides: Mapping[str, str]) -> None:
        self._values = dict(os.environ if environ is None else environ)
        self._values.update(overrides)

    def get(self, name: str) -> str:
        return self._values.get(name, "").strip()

    def optional(self, name: str) -> str:
        return self.get(name) or SETTINGS_WITH_DEFAULTS[name]

    def required(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ConfigurationError(name, "is required but not set")
        return value

    def number(self, name: str, *, minimum: float, maximum: float) -> float:
        raw = self.optional(name)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(name, f"must be a number of seconds, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigurationError(
                name, f"must be between {minimum:g} and {maximum:g}, got {raw}"
            )
        return value


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts allowed over plain http."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _arm_endpoint(raw: str) -> str:
    parts = urlsplit(raw)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(ARM_ENDPOINT, f"must be an absolute https URL, got {raw!r}")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigurationError(
            ARM_ENDPOINT, "must use https (plain http is allowed only for a loopback simulator)"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(
            ARM_ENDPOINT, "must be scheme://host[:port] with no credentials, query or fragment"
        )
    if parts.path not in ("", "/"):
        raise ConfigurationError(ARM_ENDPOINT, f"must have no path, got {parts.path!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ConfigurationError(ARM_ENDPOINT, f"has an invalid port: {raw!r}") from None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _check_connection_string(value: str) -> None:
    fields = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
    if not fields.get("Endpoint", "").startswith("sb://"):
        raise ConfigurationError(
            SERVICE_BUS_CONNECTION, "is not a Service Bus connection string (no Endpoint=sb://...)"
        )
