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
- a queue that cannot be read (namespace unreachable, credential refused, entity
  missing) is retried with exponential back-off (``Backoff``: 1 s doubling to 60 s),
  reported once at WARNING naming the namespace and queue (however many receivers fail),
  then reminded at the same back-off, and reported at INFO once it can be read again;
- graceful shutdown: after ``stop()`` (SIGTERM/SIGINT from ``run_worker``) no new message
  is received, in-flight handlers finish and settle, then receivers close, releasing
  anything prefetched. Nothing is lost. An idle receiver notices the stop within one
  receive wait (0.2 s); a receiver backing off notices it at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType

from azure.core.exceptions import AzureError
from azure.servicebus import AutoLockRenewer, ServiceBusClient, ServiceBusReceivedMessage
from azure.servicebus import ServiceBusReceiver as SdkReceiver

from ops_status.handler import Dependencies, handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import bind, log

__all__ = ["Backoff", "Worker", "WorkerStats", "run_worker"]

logger = logging.getLogger(__name__)

# Seconds one receive call waits for a message: the longest an idle receiver takes to
# notice ``stop()`` (the SDK cannot be interrupted inside a receive call). An idle call
# costs one AMQP flow frame, so a short wait is cheap.
_RECEIVE_WAIT = 0.2


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts to reopen a queue that failed: ``initial`` doubling up to ``cap``.

    The same schedule paces the reminders that the queue still cannot be read.
    """

    initial: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1 for the first)."""
        return min(self.initial * 2.0 ** min(max(failures - 1, 0), 32), self.cap)


@dataclass
class WorkerStats:
    """Counters since start, for logs, tests, benchmarks and the exit code."""

    completed: int = 0
    abandoned: int = 0
    receive_errors: int = 0
    read_queues: set[str] = field(default_factory=set)
    """Queues a receive call succeeded on at least once (even an empty one)."""
    failed_queues: set[str] = field(default_factory=set)
    """Queues a receiver failed on at least once."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def read(self, queue: str) -> None:
        if queue not in self.read_queues:  # once per queue: no lock on the hot path
            with self._lock:
                self.read_queues.add(queue)

    def failed(self, queue: str) -> None:
        with self._lock:
            self.receive_errors += 1
            self.failed_queues.add(queue)

    @property
    def unreadable_queues(self) -> list[str]:
        """Queues that failed every time they were tried: never reached, never read."""
        with self._lock:
            return sorted(self.failed_queues - self.read_queues)


class _Outage:
    """The worker's run of failed receivers: said once at WARNING, then with back-off.

    Shared by every receiver thread, so sixteen threads failing on one unreachable
    namespace make one line, not sixteen; the lines name the queues still failing.
    """

    def __init__(
        self, namespace: str, backoff: Backoff, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._namespace = namespace
        self._backoff = backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        self._since = 0.0
        self._failures = 0
        self._reports = 0
        self._next_report = 0.0

    def failed(self, queue: str, exc: BaseException) -> None:
        with self._lock:
            now = self._clock()
            fields = {
                "namespace": self._namespace,
                "queue": queue,
                "error": type(exc).__name__,
                "detail": " ".join(str(exc).split())[:200],
            }
            if not self._failing:
                self._since, self._failures, self._reports = now, 0, 1
                self._next_report = now + self._backoff.delay(1)
                self._failing.add(queue)
                self._failures += 1
                log(
                    logger,
                    logging.WARNING,
                    "worker.waiting_for_service_bus",
                    **fields,
                    retry_s=f"{self._backoff.initial:g}..{self._backoff.cap:g}",
                    note="nothing is received from this queue until it can be read",
                )
                return
            self._failing.add(queue)
            self._failures += 1
            if now < self._next_report:
                log(logger, logging.DEBUG, "worker.receiver_failed", **fields)
                return
            self._reports += 1
            self._next_report = now + self._backoff.delay(self._reports)
            log(
                logger,
                logging.WARNING,
                "worker.still_waiting_for_service_bus",
                **{**fields, "queue": ",".join(sorted(self._failing))},
                waited_s=round(now - self._since, 1),
                failed_attempts=self._failures,
            )

    def recovered(self, queue: str) -> None:
        if queue not in self._failing:  # the common case: nothing to say, no lock taken
            return
        with self._lock:
            if queue not in self._failing:
                return
            self._failing.discard(queue)
            log(
                logger,
                logging.INFO,
                "worker.service_bus_reachable",
                namespace=self._namespace,
                queue=queue,
                waited_s=round(self._clock() - self._since, 1),
                failed_attempts=self._failures,
                still_failing=",".join(sorted(self._failing)) or None,
            )


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
        backoff: Backoff | None = None,
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
        self._backoff = backoff or Backoff()
        self._handler = handler
        self._stopping = threading.Event()
        self._stop_requested: float | None = None
        namespace = str(getattr(client, "fully_qualified_namespace", "?"))
        self._outage = _Outage(namespace, self._backoff)
        self.stats = WorkerStats()

    def stop(self) -> None:
        """Ask the worker to finish in-flight messages and return from ``run``."""
        if self._stop_requested is None:
            self._stop_requested = time.monotonic()
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
        stopped = self._stop_requested
        log(
            logger,
            logging.INFO,
            "worker.stopped",
            completed=self.stats.completed,
            abandoned=self.stats.abandoned,
            receive_errors=self.stats.receive_errors or None,
            unreadable=",".join(self.stats.unreadable_queues) or None,
            stop_s=round(time.monotonic() - stopped, 2) if stopped is not None else None,
        )
        return self.stats

    def _loop(self, renewer: AutoLockRenewer, source: Queue, queue: str) -> None:
        failures = 0  # this thread's failures in a row: its back-off
        while not self._stopping.is_set():
            try:
                with self._client.get_queue_receiver(
                    queue, prefetch_count=0, auto_lock_renewer=renewer
                ) as receiver:
                    while not self._stopping.is_set():
                        messages = receiver.receive_messages(
                            max_message_count=1, max_wait_time=_RECEIVE_WAIT
                        )
                        failures = 0
                        self._outage.recovered(queue)
                        self.stats.read(queue)
                        for message in messages:
                            self._handle(receiver, message, source)
            except (AzureError, OSError) as exc:
                # Unreachable, refused, or a dropped connection: reopen after a back-off.
                # The message being handled (if any) was settled or its lock will expire.
                self.stats.failed(queue)
                failures += 1
                self._outage.failed(queue, exc)
                self._stopping.wait(self._backoff.delay(failures))

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
