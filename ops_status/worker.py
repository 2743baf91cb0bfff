"""The standalone worker: the Functions host's job, done by a plain long-running process.

For users who run consumers in containers (Container Apps, AKS with KEDA) rather than
Functions. It hosts the same ``handle_watch_message`` with the host's semantics:

- PeekLock receive from both queues (intake and polls: one handler, told which queue a
  message came from), ``concurrency`` handlers at once spread over the queues (one
  receiver per handler thread: receivers are not documented as thread-safe, and AMQP
  connections stay bounded by the concurrency, never by the message count);
- complete on success, abandon on exception (Service Bus redelivers, then dead-letters
  after MaxDeliveryCount);
- locks renewed while a handler runs (``AutoLockRenewer``), up to ``max_lock_renewal``;
- graceful shutdown: after ``stop()`` (SIGTERM/SIGINT from ``run_worker``) no new message
  is received, in-flight handlers finish and settle, then receivers close, releasing
  anything prefetched. Nothing is lost.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType

from azure.core.exceptions import AzureError
from azure.servicebus import AutoLockRenewer, ServiceBusClient, ServiceBusReceivedMessage
from azure.servicebus import ServiceBusReceiver as SdkReceiver

from ops_status.handler import Dependencies, handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import bind, log

__all__ = ["Worker", "WorkerStats", "run_worker"]

logger = logging.getLogger(__name__)

# How long one receive call waits for a message: also how quickly a stop is noticed.
_RECEIVE_WAIT = 1.0


@dataclass
class WorkerStats:
    """Counters since start, for logs, tests and benchmarks."""

    completed: int = 0
    abandoned: int = 0
    receive_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


class Worker:
    """Receives watches from the queue and runs the handler on each.

    Example::

        queues = {Queue.INTAKE: "ops-status-intake", Queue.POLLS: "ops-status-polls"}
        worker = Worker(service_bus_client, queues, get_dependencies())
        worker.run()          # blocks until worker.stop() is called from elsewhere
    """

    def __init__(
        self,
        client: ServiceBusClient,
        queues: Mapping[Queue, str],
        dependencies: Dependencies,
        *,
        concurrency: int = 16,
        max_lock_renewal: float = 300.0,
        handler: Callable[..., object] = handle_watch_message,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not queues:
            raise ValueError("give at least one queue")
        self._client = client
        self._queues = dict(queues)
        self._dependencies = dependencies
        self._concurrency = concurrency
        self._max_lock_renewal = max_lock_renewal
        self._handler = handler
        self._stopping = threading.Event()
        self.stats = WorkerStats()

    def stop(self) -> None:
        """Ask the worker to finish in-flight messages and return from ``run``."""
        self._stopping.set()

    def run(self) -> WorkerStats:
        """Receive and handle until ``stop()``; returns when every handler has settled."""
        renewer = AutoLockRenewer(max_lock_renewal_duration=self._max_lock_renewal)
        sources = list(self._queues.items())
        # Every queue gets at least one receiver; the rest are dealt out in turn.
        threads = [
            threading.Thread(
                target=self._loop,
                args=(renewer, *sources[n % len(sources)]),
                name=f"ops-status-{sources[n % len(sources)][0].value}-{n}",
            )
            for n in range(max(self._concurrency, len(sources)))
        ]
        log(
            logger,
            logging.INFO,
            "worker.started",
            queues=",".join(self._queues.values()),
            concurrency=len(threads),
        )
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            renewer.close()
        log(
            logger,
            logging.INFO,
            "worker.stopped",
            completed=self.stats.completed,
            abandoned=self.stats.abandoned,
        )
        return self.stats

    def _loop(self, renewer: AutoLockRenewer, source: Queue, queue: str) -> None:
        while not self._stopping.is_set():
            try:
                with self._client.get_queue_receiver(
                    queue, prefetch_count=0, auto_lock_renewer=renewer
                ) as receiver:
                    while not self._stopping.is_set():
                        for message in receiver.receive_messages(
                            max_message_count=1, max_wait_time=_RECEIVE_WAIT
                        ):
                            self._handle(receiver, message, source)
            except (AzureError, OSError) as exc:
                # A dropped connection or a broker hiccup: reopen the receiver. The
                # message being handled (if any) was settled or its lock will expire.
                self.stats.count("receive_errors")
                log(
                    logger,
                    logging.WARNING,
                    "worker.receiver_failed",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
                self._stopping.wait(1.0)

    def _handle(
        self, receiver: SdkReceiver, message: ServiceBusReceivedMessage, source: Queue
    ) -> None:
        inbound = InboundMessage.from_sdk(message, source)
        with bind(message_id=inbound.message_id, delivery_count=inbound.delivery_count):
            try:
                self._handler(inbound, self._dependencies)
            except Exception as exc:  # noqa: BLE001 - the host's contract: abandon, redeliver
                log(
                    logger,
                    logging.WARNING,
                    "worker.abandoning",
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                )
                self._settle(receiver.abandon_message, message, "abandoned")
                return
            self._settle(receiver.complete_message, message, "completed")

    def _settle(
        self,
        settle: Callable[[ServiceBusReceivedMessage], None],
        message: ServiceBusReceivedMessage,
        outcome: str,
    ) -> None:
        try:
            settle(message)
        except (AzureError, ValueError, OSError) as exc:
            # Lock lost or link gone (ValueError: the SDK's receiver was shut down). Nothing
            # is lost: the lock expires and Service Bus redelivers; the repeat is harmless.
            log(
                logger,
                logging.WARNING,
                "worker.settle_failed",
                outcome=outcome,
                error=type(exc).__name__,
                detail=str(exc)[:200],
            )
            return
        self.stats.count(outcome)


def run_worker(worker: Worker) -> WorkerStats:
    """Run ``worker`` in the foreground, stopping gracefully on SIGTERM or SIGINT."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log(logger, logging.INFO, "worker.stopping", signal=signal.Signals(signum).name)
        worker.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
