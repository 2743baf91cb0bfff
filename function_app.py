"""Azure Functions entry point (Python v2 programming model). Thin on purpose.

Settings are validated here, at start-up, so a missing or malformed app setting stops
the host from loading the function with a message that names it. Clients are built
lazily on the first message (``get_dependencies``), never at import.
"""

from __future__ import annotations

import azure.functions as func

from ops_status import get_dependencies, handle_watch_message, load_settings

settings = load_settings()
app = func.FunctionApp()


@app.function_name("watch_operation")
@app.service_bus_queue_trigger(
    arg_name="message",
    queue_name="%OPS_STATUS_WATCH_QUEUE%",
    connection="ServiceBusConnection",
)
def watch_operation(message: func.ServiceBusMessage) -> None:
    """Read one operation's status; reschedule the watch or publish its terminal event."""
    handle_watch_message(
        message.get_body(),
        get_dependencies(settings),
        message_id=message.message_id,
        delivery_count=message.delivery_count,
    )
