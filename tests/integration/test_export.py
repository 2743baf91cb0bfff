"""Telemetry export over the real protocols, in fresh processes started as the host starts one.

Each test runs a child that imports ``function_app`` (or runs ``ops-status worker``) with
the export settings under test, records a span, a metric and a log line, and exits: the
SDK's exit hooks flush every pipeline. A loopback HTTP server stands in for the OTLP
collector (OTLP/HTTP protobuf, decoded with opentelemetry-proto) and for Application
Insights ingestion (the distro's exporter, pointed at it by the connection string's
IngestionEndpoint); the managed-identity simulator issues the Entra token.

azure-core sends a bearer token only over TLS, so the Entra test serves ingestion over
https on loopback with a certificate made for the test, which the child trusts through
``REQUESTS_CA_BUNDLE`` (azure-core's transport is requests).

Every Azure Monitor side channel that would leave the machine is switched off in the
child's environment (statsbeat, SDK stats, the OneSettings control plane) and the resource
detectors are pinned, so nothing but the loopback servers is ever contacted.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from emulators.identity import IdentitySimulator
from emulators.stack import LocalStack
from tests.conftest import BASE_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
USER_ASSIGNED = "5b2f9c1e-0d7a-4c1b-9a51-3f0c2b7d8e14"

# Modules that only an exporter pipeline imports.
EXPORT_MODULES = ("opentelemetry.exporter", "opentelemetry.sdk", "azure.monitor")

# Records one span, one counter increment and one log line inside the span, then prints
# the span's ids. Imports function_app first: that is the start-up under test.
CHILD = """
import json, logging, sys
import function_app
from opentelemetry import metrics, trace
from ops_status.logs import log
logging.getLogger().setLevel(logging.INFO)
logger = logging.getLogger("ops_status.probe")
with trace.get_tracer("probe").start_as_current_span("probe-span") as span:
    log(logger, logging.INFO, "probe.inside", message_id="m-1")
metrics.get_meter("probe").create_counter("probe.count").add(3)
context = span.get_span_context()
print(json.dumps({"trace_id": format(context.trace_id, "032x"),
                  "span_id": format(context.span_id, "016x")}))
"""

IMPORTS = """
import json, sys
import function_app
print(json.dumps(sorted(sys.modules)))
"""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Collector:
    """An HTTP server on loopback that keeps every POST and answers like its peer."""

    answer: bytes = b""
    content_type: str = "application/x-protobuf"
    received: list[Received] = field(default_factory=list)
    url: str = ""
    ca_bundle: str = ""

    def posts(self, path: str) -> list[Received]:
        return [item for item in self.received if item.path == path]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ingestion.pem", directory / "ingestion.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collector]:
    state = Collector()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with lock:
                state.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            self.send_response(200)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if getattr(request, "param", None) == "tls":
        cert_path, key_path = self_signed_certificate(tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        state.ca_bundle = str(cert_path)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def child_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("OPS_STATUS_", "ServiceBusConnection", "AZURE_", "IDENTITY_", "MSI_", "OTEL_")
        )
        and not k.startswith("APPLICATIONINSIGHTS_")
    }
    environment.update(BASE_ENVIRONMENT)
    environment.update(
        {
            # Nothing but the loopback peers: no statsbeat, SDK stats or control plane
            # traffic to Microsoft, no instance-metadata probe.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            # The exporter's offline retry storage lives under the temp directory.
            "TMPDIR": str(tmp_path),
        }
    )
    environment.update(settings)
    return environment


def run_child(code: str, environment: dict[str, str]) -> Any:
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_with_no_exporter_configured_start_up_imports_no_exporter_module(tmp_path: Path) -> None:
    modules = run_child(IMPORTS, child_environment(tmp_path))

    assert "function_app" in modules
    assert [name for name in modules if name.startswith(EXPORT_MODULES)] == []


def test_with_an_otlp_endpoint_spans_metrics_and_logs_arrive_over_otlp_http(
    collector: Collector, tmp_path: Path
) -> None:
    ids = run_child(CHILD, child_environment(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url))

    assert {item.path for item in collector.received} == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    for item in collector.received:
        assert item.headers["content-type"] == "application/x-protobuf"
    spans = [
        span
        for post in collector.posts("/v1/traces")
        for resource in ExportTraceServiceRequest.FromString(post.body).resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [(span.name, span.trace_id.hex(), span.span_id.hex()) for span in spans] == [
        ("probe-span", ids["trace_id"], ids["span_id"])
    ]
    records = [
        record
        for post in collector.posts("/v1/logs")
        for resource in ExportLogsServiceRequest.FromString(post.body).resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    ]
    (probe,) = [r for r in records if r.body.string_value.startswith("probe.inside")]
    assert probe.body.string_value == (
        f"probe.inside message_id=m-1 trace_id={ids['trace_id']} span_id={ids['span_id']}"
    )
    assert (probe.trace_id.hex(), probe.span_id.hex()) == (ids["trace_id"], ids["span_id"])
    metric_names = {
        metric.name
        for post in collector.posts("/v1/metrics")
        for resource in ExportMetricsServiceRequest.FromString(post.body).resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert "probe.count" in metric_names
    resource_names = {
        attribute.value.string_value
        for post in collector.posts("/v1/traces")
        for resource in ExportTraceServiceRequest.FromString(post.body).resource_spans
        for attribute in resource.resource.attributes
        if attribute.key == "service.name"
    }
    assert resource_names == {"ops-status"}


def test_a_bad_otlp_protocol_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import function_app"],
        env=child_environment(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode != 0
    assert "OTEL_EXPORTER_OTLP_PROTOCOL: must be 'http/protobuf'" in completed.stderr


def _envelopes(collector: Collector) -> list[dict[str, Any]]:
    envelopes: list[dict[str, Any]] = []
    for post in collector.posts("/v2.1/track"):
        text = post.body.decode("utf-8")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
        envelopes.extend(parsed if isinstance(parsed, list) else [parsed])
    return envelopes


@pytest.mark.parametrize("collector", ["tls"], indirect=True)
def test_with_an_application_insights_connection_string_records_arrive_with_an_entra_token(
    collector: Collector, tmp_path: Path
) -> None:
    # Given ingestion on loopback that accepts everything, and the managed-identity endpoint
    collector.content_type = "application/json"
    collector.answer = json.dumps({"itemsReceived": 0, "itemsAccepted": 0, "errors": []}).encode()
    with IdentitySimulator() as identity:
        environment = child_environment(
            tmp_path,
            APPLICATIONINSIGHTS_CONNECTION_STRING=(
                "InstrumentationKey=00000000-0000-0000-0000-0000000000a1;"
                f"IngestionEndpoint={collector.url}/"
            ),
            APPLICATIONINSIGHTS_AUTHENTICATION_STRING=f"Authorization=AAD;ClientId={USER_ASSIGNED}",
            AZURE_CLIENT_ID=USER_ASSIGNED,
            REQUESTS_CA_BUNDLE=collector.ca_bundle,
            # The distro samples at most 5 traces a second by default, starting from an
            # empty budget: the one probe span would be dropped now and then.
            OTEL_TRACES_SAMPLER="always_on",
            **identity.environ(),
        )
        # When the app starts with them and records inside a span
        ids = run_child(CHILD, environment)
        token_requests = identity.requests

    # Then the span, the log line and the metric arrive, each sent with the app's token
    envelopes = _envelopes(collector)
    kinds = {envelope["data"]["baseType"] for envelope in envelopes}
    assert {"MessageData", "MetricData"} <= kinds, kinds
    # An INTERNAL span is a dependency in Application Insights' model.
    span_envelope = next(e for e in envelopes if e["data"]["baseData"].get("name") == "probe-span")
    assert span_envelope["data"]["baseType"] == "RemoteDependencyData"
    assert span_envelope["data"]["baseData"]["id"] == ids["span_id"]
    assert any(
        metric["name"] == "probe.count"
        for e in envelopes
        if e["data"]["baseType"] == "MetricData"
        for metric in e["data"]["baseData"]["metrics"]
    )
    assert span_envelope["tags"]["ai.operation.id"] == ids["trace_id"]
    message = next(
        e
        for e in envelopes
        if str(e["data"]["baseData"].get("message", "")).startswith("probe.inside")
    )
    assert message["tags"]["ai.operation.id"] == ids["trace_id"]
    assert message["tags"]["ai.operation.parentId"] == ids["span_id"]
    expected = "Bearer " + IdentitySimulator.token_for("https://monitor.azure.com")
    assert {post.headers.get("authorization") for post in collector.posts("/v2.1/track")} == {
        expected
    }
    assert token_requests, "no managed-identity token was requested"
    assert {request.client_id for request in token_requests} == {USER_ASSIGNED}


def test_the_worker_exports_its_logs_over_otlp_from_its_start(
    collector: Collector, tmp_path: Path
) -> None:
    with LocalStack() as stack:
        environment = child_environment(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)
        for name in BASE_ENVIRONMENT:
            environment.pop(name)
        environment.update(stack.environment(identity_based=False))
        with subprocess.Popen(
            [sys.executable, "-m", "ops_status", "worker", "--concurrency", "1"],
            env=environment,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as worker:
            assert worker.stderr is not None
            log = []
            for line in worker.stderr:
                log.append(line)
                if "worker.started" in line:
                    worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, "".join(log)

    bodies = [
        record.body.string_value
        for post in collector.posts("/v1/logs")
        for resource in ExportLogsServiceRequest.FromString(post.body).resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    ]
    assert any(body.startswith("worker.started") for body in bodies), bodies
    assert any(body.startswith("telemetry.export destinations=otlp") for body in bodies), bodies


WITHOUT_EXPORTERS = """
import sys

class NoExporters:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("azure.monitor", "opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoExporters())
from ops_status.errors import ConfigurationError
from ops_status.settings import load_telemetry_settings
from ops_status.telemetry import configure_export
try:
    configure_export(load_telemetry_settings({sys.argv[1]: sys.argv[2]}))
except ConfigurationError as error:
    print(error)
"""


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=k"),
    ],
)
def test_export_asked_for_without_the_export_extra_names_the_setting_and_the_extra(
    tmp_path: Path, setting: str, value: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXPORTERS, setting, value],
        env=child_environment(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    message = completed.stdout.strip()
    assert message.startswith(f"{setting}: is set, but ")
    assert message.endswith("is not installed (pip install 'ops-status[export]')")


ALREADY_INSTALLED = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())  # as the Functions worker does when it configures
import function_app
from ops_status.telemetry import configure_export
with trace.get_tracer("probe").start_as_current_span("probe-span"):
    pass
print(json.dumps(configure_export(function_app.settings.telemetry)))
"""


def test_an_sdk_installed_before_start_up_is_left_alone_so_nothing_is_exported_twice(
    collector: Collector, tmp_path: Path
) -> None:
    destinations = run_child(
        ALREADY_INSTALLED, child_environment(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)
    )

    assert destinations == []
    assert collector.received == []
