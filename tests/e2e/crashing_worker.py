"""A worker that dies like SIGKILL right after one kind of follow-up was sent.

``python -m tests.e2e.crashing_worker schedule|event`` handles the first message it
receives with the real handler and real adapters, and calls ``os._exit`` the moment
the chosen follow-up has been sent: after Service Bus accepted it, before the message
is completed. The lock then expires and Service Bus redelivers the message, which is
exactly the at-least-once case deterministic MessageIds must make harmless.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from ops_status.bootstrap import build_dependencies, create_service_bus_client
from ops_status.events import OutboundMessage
from ops_status.handler import handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.servicebus import Outputs
from ops_status.settings import load_settings


class DieAfterSending:
    def __init__(self, inner: Outputs, kind: str) -> None:
        self._inner = inner
        self._kind = kind

    def schedule_poll(self, message: OutboundMessage, enqueue_at: datetime) -> None:
        self._inner.schedule_poll(message, enqueue_at)
        if self._kind == "schedule":
            os._exit(137)

    def send_event(self, message: OutboundMessage) -> None:
        self._inner.send_event(message)
        if self._kind == "event":
            os._exit(137)


def main() -> None:
    kind = sys.argv[1]
    settings = load_settings()
    real = build_dependencies(settings)
    dependencies = build_dependencies(
        settings,
        credential=real.credential,
        status_reader=real.status_reader,
        outputs=DieAfterSending(real.outputs, kind),
    )
    client = create_service_bus_client(settings, real.credential)
    # The first step of a watch is the intake message: it is the one this worker kills.
    with client.get_queue_receiver(settings.intake_queue, prefetch_count=0) as receiver:
        while True:
            for message in receiver.receive_messages(max_message_count=1, max_wait_time=1):
                handle_watch_message(InboundMessage.from_sdk(message, Queue.INTAKE), dependencies)
                receiver.complete_message(message)


if __name__ == "__main__":
    main()
