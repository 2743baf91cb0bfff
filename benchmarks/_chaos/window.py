"""The window run: a worker killed between send and complete, deterministically, then
the real worker takes the redeliveries; once inside the deployed duplicate-detection
window and once with a window shorter than the redelivery delay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from azure.servicebus import ServiceBusClient

from emulators.arm import Step
from emulators.stack import LocalStack
from ops_status.request import parse_watch_request, submission_key

from .config import (
    ARM_ANY,
    DEPLOYED_WINDOW,
    MAX_DELIVERY_COUNT,
    ROOT,
    SHORT_WINDOW,
    WINDOW_KINDS,
    WINDOW_LOCK,
)
from .harness import (
    EventCollector,
    Sampler,
    Worker,
    dead_letters_of,
    queues_left,
    submit_watches,
    worker_environment,
)
from .plan import Watch
from .seam import EntitySends, SeamCounts, entity_sends


@dataclass
class WindowReport:
    """One window run: every step's follow-up sent, the worker dead before completing."""

    window: float
    lock_duration: float
    kinds: dict[str, str]
    """correlationId -> "event" (the killed step published the terminal event) or "fork"
    (the killed step scheduled the next poll)."""
    crash_exit: int | None
    sends: dict[str, EntitySends]
    events_per_watch: dict[str, int]
    redelivered_steps: int
    """Steps the worker ran on a redelivered intake message (delivery count 2)."""
    dead_lettered: int
    arm_reads: int
    left: int
    wall_time: float
    log_path: str

    @property
    def duplicate_events(self) -> int:
        return sum(n - 1 for n in self.events_per_watch.values() if n > 1)

    @property
    def forked_watches(self) -> int:
        """Watches whose first poll MessageId the polls queue kept twice (two chains)."""
        return self.sends["polls"].kept_twice

    @property
    def hazard(self) -> bool:
        return self.duplicate_events > 0 or self.forked_watches > 0

    def figures(self) -> dict[str, float]:
        polls, topic = self.sends["polls"], self.sends["topic"]
        return {
            "polls: tried": polls.tried,
            "polls: distinct MessageIds": polls.distinct_ids,
            "polls: duplicates dropped": polls.dropped,
            "polls: kept": polls.kept,
            "polls: kept twice (forked chains)": polls.kept_twice,
            "topic: tried": topic.tried,
            "topic: distinct MessageIds": topic.distinct_ids,
            "topic: duplicates dropped": topic.dropped,
            "topic: kept": topic.kept,
            "duplicate terminal events": self.duplicate_events,
            "steps redelivered after the kill": self.redelivered_steps,
            "dead-lettered": self.dead_lettered,
            "ARM reads": self.arm_reads,
            "wall time (s)": self.wall_time,
        }

    def problems(self, *, expect_hazard: bool) -> list[str]:
        """What is wrong with this run, given whether its window should show the hazard."""
        found = []
        watches = len(self.kinds)
        if self.crash_exit != 137:
            found.append(f"the crashing worker exited with {self.crash_exit}, not 137")
        if self.redelivered_steps < watches:
            found.append(f"only {self.redelivered_steps} of {watches} steps were redelivered")
        if any(n == 0 for n in self.events_per_watch.values()):
            found.append(f"a watch got no event: {self.events_per_watch}")
        if self.dead_lettered or self.left:
            found.append(f"{self.dead_lettered} dead-lettered, {self.left} left on the queues")
        events = sum(1 for k in self.kinds.values() if k == "event")
        forks = watches - events
        if expect_hazard:
            if self.duplicate_events < events:
                found.append(f"{self.duplicate_events} duplicate events kept; expected >= {events}")
            if self.forked_watches < forks:
                found.append(f"{self.forked_watches} forked chains kept; expected >= {forks}")
        else:
            if self.hazard:
                found.append(
                    f"{self.duplicate_events} duplicate events and {self.forked_watches} forks "
                    f"kept inside a {self.window:g} s window"
                )
            if self.sends["topic"].dropped < events or self.sends["polls"].dropped < forks:
                found.append("the repeated sends were not dropped as duplicates")
        return found


def run_window(
    window: float,
    *,
    lock_duration: float = WINDOW_LOCK,
    per_kind: int = 1,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> WindowReport:
    """Kill a worker between send and complete on ``2 x per_kind`` watches, let the real
    worker take the redeliveries, and count what the broker kept with ``window``."""
    started = time.monotonic()
    log_path = log_path or Path(f"/tmp/ops-status-window-{os.getpid()}-{window:g}.log")
    log_path.unlink(missing_ok=True)
    attempts = log_path.with_suffix(".sends")
    attempts.unlink(missing_ok=True)
    with LocalStack(
        lock_duration=lock_duration,
        max_delivery_count=MAX_DELIVERY_COUNT,
        duplicate_detection_window=window,
    ) as stack:
        kinds: dict[str, str] = {}
        plan = []
        for i in range(per_kind):
            for kind in WINDOW_KINDS:
                operation = f"window-{kind}-{i}"
                if kind == "event":
                    steps = [Step.succeeded()]  # the killed step publishes the event
                else:
                    # Still running when the redelivered step reads (about one lock
                    # period after the first read), so it schedules the first poll again.
                    steps = [Step.running(for_seconds=lock_duration + 0.5), Step.succeeded()]
                stack.arm.script(operation, steps)
                body = json.dumps(
                    {
                        "subscriptionId": "e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f",
                        "location": "westus",
                        "operationId": operation,
                        "correlationId": operation,
                    }
                ).encode()
                message_id = submission_key(parse_watch_request(body, arm_endpoint=ARM_ANY))
                plan.append(Watch(i, kind, operation, operation, body, message_id, steps))
                kinds[operation] = kind
        environment = worker_environment(stack)
        client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
        sampler = Sampler(stack)
        collector = EventCollector()
        worker = Worker(environment, log_path, 4, attempts)
        crash_exit: int | None = None
        settled_at: float | None = None

        def settled() -> bool:
            nonlocal settled_at
            if settled_at is None:
                if all(k in collector.by_watch for k in kinds) and queues_left(stack) == 0:
                    settled_at = time.monotonic()
                return False
            return time.monotonic() - settled_at > 0.5  # strays

        try:
            sampler.start()
            with log_path.open("ab") as log:
                # Started before the submissions, so its start-up overlaps theirs.
                crasher = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.chaos",
                        "--crash-after-sends",
                        str(len(plan)),
                        "--attempts",
                        str(attempts),
                    ],
                    env=environment,
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                )
                with ServiceBusClient.from_connection_string(
                    stack.pipeline_connection_string
                ) as pipeline:
                    submit_watches(pipeline, plan)
                try:
                    crash_exit = crasher.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    crasher.kill()
                    crasher.wait(timeout=10)
            worker.start()
            collector.run(client, settled, started + timeout)
        finally:
            # Everything has settled (or the run timed out): nothing in flight to finish.
            worker.stop(graceful=False)
            sampler.stop()
            client.close()
        sends = entity_sends(
            stack,
            SeamCounts.read(attempts),
            {"polls": sampler.kept_twice, "topic": collector.kept_twice},
        )
        dead = len(dead_letters_of(stack))
        left = queues_left(stack)
        arm_reads = sum(1 for r in stack.arm.requests if r.operation_id in kinds)
    redelivered = sum(
        1
        for line in log_path.read_text(errors="replace").splitlines()
        if "delivery_count=2" in line and ("watch.finished" in line or "watch.rescheduled" in line)
    )
    return WindowReport(
        window=window,
        lock_duration=lock_duration,
        kinds=kinds,
        crash_exit=crash_exit,
        sends=sends,
        events_per_watch={k: len(collector.by_watch.get(k, [])) for k in kinds},
        redelivered_steps=redelivered,
        dead_lettered=dead,
        arm_reads=arm_reads,
        left=left,
        wall_time=time.monotonic() - started,
        log_path=str(log_path),
    )


def run_windows(
    windows: Sequence[float] = (DEPLOYED_WINDOW, SHORT_WINDOW),
    *,
    lock_duration: float = WINDOW_LOCK,
    per_kind: int = 1,
    log_dir: Path | None = None,
) -> list[WindowReport]:
    """``run_window`` for each window, all at once (each on its own stack and processes)."""
    results: dict[float, WindowReport] = {}
    errors: list[BaseException] = []

    def one(window: float) -> None:
        try:
            log = (log_dir / f"window-{window:g}.log") if log_dir else None
            results[window] = run_window(
                window, lock_duration=lock_duration, per_kind=per_kind, log_path=log
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(w,), name=f"window-{w:g}") for w in windows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[w] for w in windows]


def window_table(reports: Sequence[WindowReport]) -> str:
    lines = [
        "| window | lock | watches | polls: tried / distinct / dropped / kept / kept twice "
        "| topic: tried / distinct / dropped / kept | duplicate terminal events "
        "| forked chains | redelivered steps | dead-lettered | events per watch | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        p, t = r.sends["polls"], r.sends["topic"]
        per_watch = ", ".join(f"{r.kinds[k]} {n}" for k, n in sorted(r.events_per_watch.items()))
        lines.append(
            f"| {r.window:g} s | {r.lock_duration:g} s | {len(r.kinds)} | "
            f"{p.tried} / {p.distinct_ids} / {p.dropped} / {p.kept} / {p.kept_twice} | "
            f"{t.tried} / {t.distinct_ids} / {t.dropped} / {t.kept} | {r.duplicate_events} | "
            f"{r.forked_watches} | {r.redelivered_steps} | {r.dead_lettered} | {per_watch} | "
            f"{r.wall_time:.1f} s |"
        )
    return "\n".join(lines)
