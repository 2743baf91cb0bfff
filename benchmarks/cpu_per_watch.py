"""CPU milliseconds per watch: the product against the azure-servicebus SDK's own floor.

Run: ``python -m benchmarks.cpu_per_watch [--rounds 5] [--messages 400] [--warm-up 60]
[--concurrency 16] [--variants floor,worker,functions] [--profile worker]``.

One run, interleaved: every round measures each variant once, in a rotating order, so
machine load (2 cores shared with other work) falls on all of them alike. The figure is
**process CPU time** (``time.process_time``: user + system of every thread of this
process) per message, not wall time; the peers (``emulators.stack.LocalStack``: Service
Bus AMQP emulator, ARM simulator, managed-identity endpoint) run in a child process
(``benchmarks.handler_cost.StackProcess``), so their CPU is not charged. Each variant
first handles ``--warm-up`` messages (connections, tokens, caches), then ``--messages``
are measured. The workload is ``handler_cost``'s: 70 % of the operations still running
(the follow-up is a scheduled send to the polls queue), 20 % succeeded, 10 % failed (an
event on the topic).

Variants:

- ``floor``: the same cycle with the plain SDK and no product logic: ``--concurrency``
  PeekLock receivers spread over the intake and polls queues as the worker spreads them
  (``prefetch_count=0``, one message per receive call, 0.2 s waits), and for each message
  one send (a scheduled message to the polls queue, or a message with application
  properties to the topic, under one lock per sender as the product does), then complete.
  Nothing is parsed, no ARM read: the cheapest this SDK does receive -> send -> complete.
- ``worker``: ``ops_status.worker.Worker`` wired as ``python -m ops_status worker`` wires
  it (identity-based client, ``AutoLockRenewer``), each message read from ARM and
  answered; ``ops_status`` logs at INFO (rendered, then discarded).
- ``functions``: the Functions path's Python side: ``function_app.watch_intake`` called
  per message from ``--concurrency`` threads with an ``azure.functions.ServiceBusMessage``
  (the Python worker's thread pool; the host receives and completes in .NET, so this
  variant has no receive or complete to pay for).

Printed per variant: CPU ms per message (min / median / max over the rounds), messages
per second (wall), and the machine's load (``os.getloadavg()``) before and after, and
``nproc``. ``--profile worker`` (or ``floor``, ``functions``) adds one more round of that
variant under cProfile (one profiler per thread, merged) and prints where its CPU went,
grouped by package.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.handler_cost import (
    APP_SETTINGS,
    StackProcess,
    Watch,
    _feed_queue,
    app_environment,
    fresh_function_app,
    functions_message,
    make_workload,
    product_logging,
)

VARIANTS = ("floor", "worker", "functions")
_RECEIVE_WAIT = 0.2  # as ops_status.worker


@dataclass(frozen=True)
class Sample:
    """One measured stretch of one variant."""

    variant: str
    messages: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.cpu_s / self.messages

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


class Meter:
    """Counts handled messages; snapshots CPU and wall time at the warm-up mark and the end."""

    def __init__(self, warm_up: int, measured: int) -> None:
        self.warm_up = warm_up
        self.total = warm_up + measured
        self._lock = threading.Lock()
        self.done = 0
        self.warm: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None
        self.finished = threading.Event()
        if warm_up == 0:
            self.warm = (time.process_time(), time.perf_counter())

    def completed(self, n: int = 1) -> None:
        with self._lock:
            before, self.done = self.done, self.done + n
            if before < self.warm_up <= self.done:
                self.warm = (time.process_time(), time.perf_counter())
            if before < self.total <= self.done:
                self.end = (time.process_time(), time.perf_counter())
                self.finished.set()

    def sample(self, variant: str) -> Sample:
        if self.warm is None or self.end is None:
            raise RuntimeError(f"{variant}: {self.done} of {self.total} messages handled")
        return Sample(
            variant,
            self.total - self.warm_up,
            self.end[0] - self.warm[0],
            self.end[1] - self.warm[1],
        )


# -- the variants ---------------------------------------------------------------------


def _queues(environment: Mapping[str, str]) -> tuple[str, str, str]:
    return (
        environment["OPS_STATUS_INTAKE_QUEUE"],
        environment["OPS_STATUS_POLLS_QUEUE"],
        environment["OPS_STATUS_EVENTS_TOPIC"],
    )


def run_floor(
    stack: StackProcess,
    environment: Mapping[str, str],
    watches: Sequence[Watch],
    concurrency: int,
    meter: Meter,
    *,
    timeout: float = 300.0,
) -> None:
    """Plain SDK: receive -> one send -> complete, receivers laid out as the worker's."""
    from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender

    intake, polls, topic = _queues(environment)
    connection = stack.environment(identity_based=False)["ServiceBusConnection"]
    _feed_queue(connection, intake, watches)
    kinds = {w.message_id: w.kind for w in watches}
    stopping = threading.Event()
    with ServiceBusClient.from_connection_string(connection) as client:
        senders: dict[str, ServiceBusSender] = {
            polls: client.get_queue_sender(polls),
            topic: client.get_topic_sender(topic),
        }
        locks = {entity: threading.Lock() for entity in senders}

        def loop(queue: str) -> None:
            with client.get_queue_receiver(queue, prefetch_count=0) as receiver:
                while not stopping.is_set():
                    for message in receiver.receive_messages(
                        max_message_count=1, max_wait_time=_RECEIVE_WAIT
                    ):
                        body = b"".join(message.body)
                        message_id = f"{message.message_id}.floor"
                        if kinds.get(str(message.message_id)) == "running":
                            entity = polls
                            outgoing = ServiceBusMessage(
                                body,
                                message_id=message_id,
                                content_type="application/json",
                                scheduled_enqueue_time_utc=datetime.now(timezone.utc)
                                + timedelta(minutes=10),
                            )
                        else:
                            entity = topic
                            outgoing = ServiceBusMessage(
                                body,
                                message_id=message_id,
                                content_type="application/cloudevents+json; charset=utf-8",
                                application_properties={"status": "Succeeded", "type": "x"},
                            )
                        with locks[entity]:
                            senders[entity].send_messages(outgoing, timeout=30)
                        receiver.complete_message(message)
                        meter.completed()

        sources = [intake, polls]
        threads = [
            threading.Thread(target=loop, args=(sources[n % 2],), name=f"floor-{n}")
            for n in range(max(concurrency, 2))
        ]
        for thread in threads:
            thread.start()
        try:
            meter.finished.wait(timeout)
        finally:
            stopping.set()
            for thread in threads:
                thread.join(timeout=30)
            for sender in senders.values():
                sender.close()


def run_worker(
    stack: StackProcess,
    environment: Mapping[str, str],
    watches: Sequence[Watch],
    concurrency: int,
    meter: Meter,
    *,
    timeout: float = 300.0,
) -> None:
    """The real Worker, wired as ``python -m ops_status worker`` wires it."""
    from ops_status.bootstrap import build_dependencies, create_service_bus_client
    from ops_status.inbound import Queue
    from ops_status.settings import load_settings
    from ops_status.worker import Worker

    with app_environment(environment):
        settings = load_settings()
        connection = stack.environment(identity_based=False)["ServiceBusConnection"]
        _feed_queue(connection, settings.intake_queue, watches)
        dependencies = build_dependencies(settings)
        client = create_service_bus_client(settings, dependencies.credential)
        queues = {Queue.INTAKE: settings.intake_queue, Queue.POLLS: settings.polls_queue}
        worker = Worker(client, queues, dependencies, concurrency=concurrency)
        runner = threading.Thread(target=worker.run, name="bench-worker")
        seen = 0
        with product_logging():
            runner.start()
            deadline = time.monotonic() + timeout
            try:
                while not meter.finished.is_set() and time.monotonic() < deadline:
                    time.sleep(0.002)
                    now = worker.stats.completed + worker.stats.abandoned
                    if now > seen:
                        meter.completed(now - seen)
                        seen = now
            finally:
                worker.stop()
                runner.join(timeout=60)
                client.close()
                for resource in (dependencies.outputs, dependencies.status_reader):
                    getattr(resource, "close", lambda: None)()
                if dependencies.credential is not None:
                    getattr(dependencies.credential, "close", lambda: None)()


def run_functions(
    stack: StackProcess,
    environment: Mapping[str, str],
    watches: Sequence[Watch],
    concurrency: int,
    meter: Meter,
    *,
    timeout: float = 300.0,
) -> None:
    """``function_app.watch_intake`` per message from ``concurrency`` threads."""
    from ops_status.bootstrap import get_dependencies, reset_dependencies

    with app_environment(environment):
        function_app = fresh_function_app()
        enqueued = datetime.now(timezone.utc)
        cursor = iter(watches)
        lock = threading.Lock()

        def loop() -> None:
            while True:
                with lock:
                    watch = next(cursor, None)
                if watch is None:
                    return
                function_app.watch_intake(functions_message(watch, enqueued))
                meter.completed()

        try:
            with product_logging():
                run_pool(loop, concurrency, timeout)
        finally:
            credential = get_dependencies(function_app.settings).credential
            reset_dependencies()
            getattr(credential, "close", lambda: None)()
            sys.modules.pop("function_app", None)


def run_pool(loop: Callable[[], None], threads: int, timeout: float) -> None:
    """``threads`` threads running ``loop`` to its end (the host's dispatch)."""
    workers = [threading.Thread(target=loop, name=f"host-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)


_RUNNERS: dict[str, Callable[..., None]] = {
    "floor": run_floor,
    "worker": run_worker,
    "functions": run_functions,
}


def measure(
    variant: str,
    stack: StackProcess,
    environment: Mapping[str, str],
    *,
    messages: int,
    warm_up: int,
    concurrency: int,
) -> Sample:
    """One stretch of ``variant``: ``warm_up`` messages, then ``messages`` measured."""
    endpoint = environment["OPS_STATUS_ARM_ENDPOINT"]
    watches = make_workload(warm_up + messages, variant, endpoint)
    stack.script([(w.operation_id, w.kind) for w in watches])
    meter = Meter(warm_up, messages)
    _RUNNERS[variant](stack, environment, watches, concurrency, meter)
    return meter.sample(variant)


# -- profiling ------------------------------------------------------------------------


@contextlib.contextmanager
def profiled_threads() -> Iterator[list[cProfile.Profile]]:
    """cProfile every thread started inside (cProfile sees only the thread it runs on),
    timed by each thread's CPU clock: time blocked in receive waits and locks is not CPU."""
    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    # Not the calling thread: it only feeds the queue and waits.
    threading.Thread.run = run  # type: ignore[method-assign]
    try:
        yield profiles
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]


_GROUPS = (
    (
        "requests/urllib3/http.client (ARM read)",
        ("requests/", "urllib3/", "http/client", "email/", "http/cookiejar"),
    ),
    ("azure-servicebus (+ _pyamqp)", ("azure/servicebus",)),
    ("azure-identity/msal/azure-core", ("azure/identity", "msal/", "azure/core")),
    ("logging (incl. ops_status.logs)", ("/logging/", "ops_status/logs.py")),
    ("ops_status (product code)", ("ops_status/", "function_app.py")),
    ("azure-functions", ("azure/functions",)),
    ("benchmark harness", ("benchmarks/",)),
)
_UNATTRIBUTED = "thread roots, other"


def group_profile(profiles: Sequence[cProfile.Profile]) -> list[tuple[str, float]]:
    """Own time (tottime) per package group, largest first. Time in the standard library
    and built-ins (``json``, ``typing.cast``, ``socket``, ``threading`` ...) goes to the
    groups that called it, in proportion to the calls' time, up the call graph."""
    table: Any = merged_stats(profiles).stats  # type: ignore[attr-defined]
    shares: dict[Any, Counter[str]] = {}

    def share_of(key: Any, seen: frozenset[Any]) -> Counter[str]:
        if key in shares:
            return shares[key]
        own = _group_of(key[0])
        if own is not None:
            result = Counter({own: 1.0})
        else:
            callers = table[key][4] if key in table else {}
            weights: Counter[str] = Counter()
            for caller, caller_stats in callers.items():
                if caller in seen:
                    continue
                for group, part in share_of(caller, seen | {key}).items():
                    weights[group] += part * (caller_stats[2] or 1e-9)
            total = sum(weights.values())
            result = (
                Counter({g: w / total for g, w in weights.items()})
                if total > 0
                else Counter({_UNATTRIBUTED: 1.0})
            )
        shares[key] = result
        return result

    totals: Counter[str] = Counter()
    for key, (_cc, _nc, tottime, _ct, _callers) in table.items():
        for group, part in share_of(key, frozenset()).items():
            totals[group] += tottime * part
    return totals.most_common()


def _group_of(filename: str) -> str | None:
    for name, needles in _GROUPS:
        if any(needle in filename for needle in needles):
            return name
    return None


def merged_stats(profiles: Sequence[cProfile.Profile]) -> pstats.Stats:
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        with contextlib.suppress(TypeError):  # a profile with no data
            stats.add(profile)
    return stats


def top_functions(profiles: Sequence[cProfile.Profile], limit: int = 25) -> str:
    import io

    stats = merged_stats(profiles)

    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


# -- the run --------------------------------------------------------------------------


@dataclass
class Report:
    samples: list[Sample]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    profile: list[tuple[str, float]] | None = None
    profile_top: str = ""

    def of(self, variant: str) -> list[Sample]:
        return [s for s in self.samples if s.variant == variant]


def run_benchmark(
    *,
    rounds: int = 5,
    messages: int = 400,
    warm_up: int = 60,
    concurrency: int = 16,
    variants: Sequence[str] = VARIANTS,
    profile: str | None = None,
    profile_out: str | None = None,
) -> Report:
    """Start the stack, run ``rounds`` interleaved rounds, stop the stack."""
    unknown = [v for v in [*variants, *([profile] if profile else [])] if v not in _RUNNERS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; expected some of {VARIANTS}")
    samples: list[Sample] = []
    load_before = os.getloadavg()
    grouped: list[tuple[str, float]] | None = None
    top = ""
    with StackProcess() as stack:
        environment = stack.environment(**APP_SETTINGS)
        for round_number in range(rounds):
            shift = round_number % len(variants)
            for variant in [*variants[shift:], *variants[:shift]]:
                samples.append(
                    measure(
                        variant,
                        stack,
                        environment,
                        messages=messages,
                        warm_up=warm_up,
                        concurrency=concurrency,
                    )
                )
        if profile:
            with profiled_threads() as profiles:
                measure(
                    profile,
                    stack,
                    environment,
                    messages=messages,
                    warm_up=warm_up,
                    concurrency=concurrency,
                )
            grouped = group_profile(profiles)
            if profile_out:
                merged_stats(profiles).dump_stats(profile_out)
            top = top_functions(profiles)
    return Report(samples, load_before, os.getloadavg(), grouped, top)


def _spread(values: Sequence[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def format_report(report: Report, variants: Sequence[str]) -> str:
    lines = [
        f"{'variant':<10} {'runs':>4} {'CPU ms/msg min / median / max':>30} "
        f"{'msg/s min / median / max':>28} {'x floor (median)':>16}"
    ]
    floor = report.of("floor")
    floor_median = statistics.median(s.cpu_ms_per_message for s in floor) if floor else None
    for variant in variants:
        samples = report.of(variant)
        if not samples:
            continue
        cpu = [s.cpu_ms_per_message for s in samples]
        ratio = f"{statistics.median(cpu) / floor_median:.2f}x" if floor_median else "-"
        lines.append(
            f"{variant:<10} {len(samples):>4} {_spread(cpu):>30} "
            f"{_spread([s.rate for s in samples]):>28} {ratio:>16}"
        )
    lines.append("")
    lines.append(
        "load average (1/5/15 min) before "
        + "/".join(f"{x:.2f}" for x in report.load_before)
        + ", after "
        + "/".join(f"{x:.2f}" for x in report.load_after)
        + f"; nproc {len(os.sched_getaffinity(0))}"
    )
    if report.profile is not None:
        total = sum(t for _, t in report.profile) or 1.0
        lines.append("")
        lines.append("where the profiled variant's CPU went (own time, grouped):")
        for name, spent in report.profile:
            lines.append(f"  {name:<44} {100 * spent / total:5.1f} %")
        lines.append("")
        lines.append(report.profile_top)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_per_watch", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=400, help="measured per variant and round")
    parser.add_argument("--warm-up", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--profile", choices=VARIANTS, default=None)
    parser.add_argument("--profile-out", metavar="FILE", help="write the merged pstats here")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    print(
        f"{args.rounds} rounds x {args.messages} messages (+{args.warm_up} warm-up) per variant, "
        f"concurrency {args.concurrency}, interleaved; Python {sys.version.split()[0]}"
    )
    report = run_benchmark(
        rounds=args.rounds,
        messages=args.messages,
        warm_up=args.warm_up,
        concurrency=args.concurrency,
        variants=variants,
        profile=args.profile,
        profile_out=args.profile_out,
    )
    print(format_report(report, variants))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
