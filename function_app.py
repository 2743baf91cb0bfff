"""Azure Functions entry point (Python v2 programming model). Thin on purpose.

Two triggers, one handler: ``watch_intake`` takes pipelines' submissions from the intake
queue, ``watch_polls`` the app's own follow-ups from the polls queue (which only the
app's identity may send to; the queue a message came from is what decides whether its
poll state is trusted).

Settings are validated here, at start-up, so a missing or malformed app setting stops
the host from loading the function with a message that names it. Telemetry export starts
here too, when configured (``ops_status.telemetry``). Clients are built lazily on the first
message (``get_dependencies``), never at import.
"""

from __future__ import annotations

import azure.functions as func

from ops_status import get_dependencies, handle_watch_message, load_settings
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import quiet_sdk_loggers
from ops_status.telemetry import configure_export

settings = load_settings()
quiet_sdk_loggers()  # the SDKs' INFO lines would each be an Application Insights trace
configure_export(settings.telemetry)  # off unless an exporter is configured; imports nothing then
app = func.FunctionApp()


@app.function_name("watch_intake")
@app.service_bus_queue_trigger(
    arg_name="message",
    queue_name="%OPS_STATUS_INTAKE_QUEUE%",
    connection="ServiceBusConnection",
)
def watch_intake(message: func.ServiceBusMessage) -> None:
    """A pipeline's submission: admit it as a watch and read its status the first time."""
    handle_watch_message(
        InboundMessage.from_functions(message, Queue.INTAKE), get_dependencies(settings)
    )


@app.function_name("watch_polls")
@app.service_bus_queue_trigger(
    arg_name="message",
    queue_name="%OPS_STATUS_POLLS_QUEUE%",
    connection="ServiceBusConnection",
)
def watch_polls(message: func.ServiceBusMessage) -> None:
    """A follow-up the app scheduled: read again; reschedule or publish the terminal event."""
    handle_watch_message(
        InboundMessage.from_functions(message, Queue.POLLS), get_dependencies(settings)
    )
