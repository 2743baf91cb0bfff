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
  receive wait (0.2 s); a receiver backing off notices it at once;
- no prefetch (``prefetch_count=0``): a prefetched message's lock runs from its delivery
  to the client, unrenewed, while it waits behind the handler in front of it, and a step
  may hold its receiver for up to 35 s (a slow ARM read) plus a 180 s send back-off, far
  past the queues' 60 s lock. Measured, a prefetch of 1 saved no CPU (docs/performance.md).

More than one core: one process runs its handlers under one GIL (about 200-400 watches/s
on this code); ``run_processes`` runs N of these workers in spawned child processes, each
with its own credential and clients, and stops them all on SIGTERM/SIGINT.

Why it is long (~500 lines): it is the Functions host's semantics in one place (receivers,
lock renewal, settlement, the outage back-off, graceful stop) plus the process fan-out;
split up, each part would only make sense by reading the others.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from azure.core.exceptions import AzureError
from azure.servicebus import AutoLockRenewer, ServiceBusClient, ServiceBusReceivedMessage
from azure.servicebus import ServiceBusReceiver as SdkReceiver

from ops_status.handler import Dependencies, handle_watch_message
from ops_status.inbound import InboundMessage, Queue
from ops_status.logs import bind, log

__all__ = [
    "Backoff",
    "Worker",
    "WorkerStats",
    "available_cores",
    "run_processes",
    "run_worker",
    "stop_when_parent_exits",
]

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
            pid=os.getpid(),  # one line per process with --processes
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


def run_worker(worker: Worker, *, pending_signals: Sequence[int] = ()) -> WorkerStats:
    """Run ``worker`` in the foreground, stopping gracefully on SIGTERM or SIGINT.

    ``pending_signals``: signals that arrived before this was called (a child process
    records them from its first instruction, see ``run_processes``); read after the
    handlers are installed, so none falls between the two.
    """

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log(logger, logging.INFO, "worker.stopping", signal=signal.Signals(signum).name)
        worker.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    for signum in list(pending_signals)[:1]:
        on_signal(signum, None)
    try:
        return worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def available_cores(affinity: int | None = None, cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota.

    A container's quota (Container Apps' 0.5 or 2 vCPU, Kubernetes' ``limits.cpu``) is
    not visible in the affinity mask, which shows every core of the host; more processes
    than the quota allows only queue for it. cgroup v2 ``cpu.max`` ("<quota> <period>" or
    "max <period>") or v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; quota rounded up.
    """
    cores = affinity if affinity is not None else len(os.sched_getaffinity(0))
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota(root: str) -> float | None:
    """CPUs allowed by the cgroup's quota, or None when there is none (or no cgroup)."""
    try:
        with open(os.path.join(root, "cpu.max"), encoding="ascii") as v2:
            quota, _, period = v2.read().strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period or "100000")
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us"), encoding="ascii") as v1_quota:
            quota_us = int(v1_quota.read().strip())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us"), encoding="ascii") as v1_period:
            period_us = int(v1_period.read().strip())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def run_processes(
    count: int, target: Callable[..., object], args: Sequence[object] = ()
) -> list[int]:
    """Run ``target(*args, pending_signals)`` in ``count`` spawned child processes until
    they all exit; returns their exit codes in order (negative: killed by that signal).

    Each child is a fresh interpreter (``spawn``: nothing of this process's clients,
    locks or threads is inherited), so each builds its own credential and clients. The
    first SIGTERM or SIGINT here is passed on to every child as one SIGTERM, and each
    stops gracefully (``run_worker``). A child starts with both signals ignored (the
    disposition survives exec) and records them from its first instruction
    (``pending_signals``, for ``run_worker``); the SIGTERM goes to a child only once it
    says it records them, so none is lost or kills a child mid-import. A Ctrl-C on the
    terminal reaches the children too; the recorded SIGINT stops them the same way. A
    child that exits on its own (a crash) stops the others, so the container's restart
    policy sees the failure.
    """
    context = multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(count)]
    children = [
        context.Process(
            target=_child_main,
            args=(ready[n], target, tuple(args)),
            name=f"ops-status-worker-{n + 1}",
        )
        for n in range(count)
    ]
    started: list[multiprocessing.process.BaseProcess] = []
    signalled: set[int] = set()
    # Set by the signal handler only (a plain flag: taking locks there could deadlock).
    requested: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        requested.append(signum)

    def pass_on_stop() -> None:
        for n, child in enumerate(started):
            if n not in signalled and ready[n].is_set() and child.is_alive():
                child.terminate()  # SIGTERM: the child stops gracefully
                signalled.add(n)

    def stop_all() -> None:
        if not requested:
            requested.append(0)
        pass_on_stop()

    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()  # inherits SIG_IGN for both signals
            started.append(child)
    finally:
        for sig in previous:
            signal.signal(sig, on_signal)
    log(
        logger,
        logging.INFO,
        "worker.processes_started",
        processes=len(started),
        pids=",".join(str(each.pid) for each in started),
    )
    announced = False
    try:
        running = list(started)
        while running:
            if requested and not announced:
                announced = True
                if requested[0]:
                    name = signal.Signals(requested[0]).name
                    log(logger, logging.INFO, "worker.stopping", signal=name)
            if requested:
                pass_on_stop()
            waiting = requested and len(signalled) < len(started)
            sentinels = [c.sentinel for c in running]
            done = multiprocessing.connection.wait(sentinels, timeout=0.05 if waiting else 0.5)
            for ended in [c for c in running if c.sentinel in done]:
                ended.join()
                running.remove(ended)
                if not requested:
                    log(
                        logger,
                        logging.WARNING,
                        "worker.process_exited",
                        pid=ended.pid,
                        exit_code=ended.exitcode,
                        note="stopping the other worker processes",
                    )
                    stop_all()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for leftover in started:
            if leftover.is_alive():
                leftover.terminate()
                leftover.join(timeout=30)
    return [p.exitcode if p.exitcode is not None else -signal.SIGKILL for p in started]


def _child_main(ready: Any, target: Callable[..., object], args: tuple[object, ...]) -> None:
    """A child of ``run_processes``: record SIGTERM/SIGINT, say so, run ``target``."""
    pending: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    ready.set()
    target(*args, pending)


def stop_when_parent_exits(worker: Worker) -> None:
    """In a child of ``run_processes``: stop ``worker`` gracefully if the parent dies
    (killed, OOM), so no orphaned worker keeps receiving. No-op in a main process."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        log(logger, logging.WARNING, "worker.parent_exited", note="stopping")
        worker.stop()

    threading.Thread(target=watch, name="ops-status-parent-watch", daemon=True).start()
