"""Chaos run: hundreds of watches through the real worker while every boundary misbehaves.

    .venv/bin/python -m benchmarks.chaos --watches 300 --seeds 1,2,3
    .venv/bin/python -m benchmarks.chaos --window-runs 5      # the duplicate-detection window

Starts a ``LocalStack`` (lock duration 3 s, duplicate detection 1 h as the deployment
template sets it), submits ``--watches`` watch requests to the intake queue with mixed
outcomes (succeed, fail with an error payload, cancel, time out, invalid) and runs the
worker (``python -m ops_status worker``'s code path, with the real Service Bus output
client wrapped in a counter: see "What the product tried" below) as a subprocess with
fast polling (1-2 s) while faults are injected at every boundary:

- ARM (scripted per operation): 429 with ``Retry-After``, 500, 503, connection resets,
  read timeouts (a step slower than the read timeout), malformed 200 bodies, 404 for the
  first reads, and slow drips that keep a handler busy longer than the queue's lock
  duration (the worker's lock renewer must keep the lock);
- identity endpoint: failing for 1-3 s (and for 2 or 4 s at some restarts: ``fail_for``)
  and slow (``set_delay``);
- Service Bus: sends refused for 1-3 s (polls queue and topic: the SDK's own retries
  absorb these) and, ``--long-refusals`` times, for 8 s (longer than the SDK's retries:
  the product's send fails, it holds the message for delivery count x
  ``SEND_RETRY_DELAY`` and the host redelivers it); every connection dropped;
- the worker: SIGKILLed mid-run and restarted (``--kills`` times).

Invariants, checked at the end (``ChaosReport.violations``):

- every watch has exactly one terminal event on subscription "all", or sits in a
  dead-letter queue (intake or polls) with a reason; none is lost;
- no duplicate terminal events (per watch, and per event id);
- never more than one *scheduled* poll per operation (sampled every 50 ms; a redelivered
  message plus its already-scheduled follow-up is not a fork: only SCHEDULED counts), and
  no poll MessageId kept twice by the polls queue;
- no polling after a terminal event. Precisely: no poll for an operation is *scheduled*
  (sent to the polls queue) after its terminal event was decided (``data.finishedAt``;
  the sampler notices a new scheduled message within ``SAMPLER_SLACK``). A poll scheduled
  *before* it may still be pending and read once more (a lock lost mid-step: the
  redelivered step finished the watch while the first delivery's follow-up waits).
  Such ARM reads after ``finishedAt`` are counted ("late reads"); they answer terminal
  again, end in a dropped duplicate event, and must stay below the queue's
  MaxDeliveryCount per operation;
- what the broker kept on the topic is what the harness received: one event per watch.

What the product tried. Duplicate detection hides repeats: a step that ran twice sends
twice and the broker keeps one. So the worker's output client is wrapped
(``CountingOutputs``) and every send it is asked for is appended to a file before and
after the call (a SIGKILL loses nothing already tried). The table puts those attempts
beside what the emulator received (``sent_count``, SDK retries included), dropped
(``duplicates_dropped``) and kept, per entity.

The window run (``run_window``, ``--window-runs``): a worker that sends each follow-up and
dies (``os._exit``) before completing, deterministically, then the real worker takes over
the redeliveries. Once with the template's window (1 h) and once with a window shorter
than the redelivery delay (2 s, lock 4 s): the first must drop every repeat, the second
keeps them (a duplicate terminal event, a forked polling chain), which is the hazard a
too-short window creates.

Prints tables of figures; ``run_chaos`` / ``run_window`` return them for the tests.

This file is the command line and the public surface; the parts live in
``benchmarks/_chaos/`` (``plan``, ``seam``, ``harness``, ``report``, ``run``, ``window``,
``config``: see its ``__init__``) and are re-exported here.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks._chaos.config import (
    ARM_ANY,
    ARM_ERROR,
    CONNECT_TIMEOUT,
    DEPLOYED_WINDOW,
    ENTITIES,
    EXPECTED_TYPE,
    LOCK_DURATION,
    LONG_REFUSAL,
    MAX_DELIVERY_COUNT,
    OUTCOMES,
    READ_TIMEOUT,
    ROOT,
    SAMPLER_SLACK,
    SETTINGS,
    SHORT_WINDOW,
    WATCH_TIMEOUT,
    WINDOW_KINDS,
    WINDOW_LOCK,
)
from benchmarks._chaos.harness import crash_after_sends, serve_worker
from benchmarks._chaos.plan import Watch, plan_watches
from benchmarks._chaos.report import ChaosReport
from benchmarks._chaos.run import run_chaos
from benchmarks._chaos.seam import (
    CountingOutputs,
    EntitySends,
    SeamCounts,
    entity_sends,
    sends_table,
)
from benchmarks._chaos.window import WindowReport, run_window, run_windows, window_table

__all__ = [
    "ARM_ANY",
    "ARM_ERROR",
    "CONNECT_TIMEOUT",
    "DEPLOYED_WINDOW",
    "ENTITIES",
    "EXPECTED_TYPE",
    "LOCK_DURATION",
    "LONG_REFUSAL",
    "MAX_DELIVERY_COUNT",
    "OUTCOMES",
    "READ_TIMEOUT",
    "ROOT",
    "SAMPLER_SLACK",
    "SETTINGS",
    "SHORT_WINDOW",
    "WATCH_TIMEOUT",
    "WINDOW_KINDS",
    "WINDOW_LOCK",
    "ChaosReport",
    "CountingOutputs",
    "EntitySends",
    "SeamCounts",
    "Watch",
    "WindowReport",
    "crash_after_sends",
    "entity_sends",
    "load",
    "machine",
    "main",
    "plan_watches",
    "run_chaos",
    "run_window",
    "run_windows",
    "sends_table",
    "serve_worker",
    "summary_table",
    "window_table",
]


def summary_table(runs: Sequence[dict[str, float]], label: str) -> str:
    """min / median / max of every figure over ``runs``."""
    lines = [f"| {label} | min | median | max |", "|---|---|---|---|"]
    for name in runs[0]:
        values = [run[name] for run in runs]
        cells = [_number(v) for v in (min(values), statistics.median(values), max(values))]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as ``uptime`` prints them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--watches", type=int, default=300)
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="one seed (as --seeds N)")
    parser.add_argument("--kills", type=int, default=4, help="worker SIGKILLs (default 4)")
    parser.add_argument(
        "--long-refusals", type=int, default=2, help="8 s send refusals (default 2)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default scales)")
    parser.add_argument(
        "--scenario", choices=["chaos", "window", "all"], default="chaos", help="what to run"
    )
    parser.add_argument("--window-runs", type=int, default=3, help="repeats of the window run")
    parser.add_argument("--window-lock", type=float, default=WINDOW_LOCK)
    parser.add_argument("--short-window", type=float, default=SHORT_WINDOW)
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--crash-after-sends", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--attempts", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_worker:
        return serve_worker(args.attempts, args.concurrency)
    if args.crash_after_sends is not None:
        return crash_after_sends(args.attempts, args.crash_after_sends)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    failed = False
    print(f"machine: {machine()}; load before: {load()}")
    if args.scenario in ("chaos", "all"):
        seeds = [args.seed] if args.seed is not None else [int(s) for s in args.seeds.split(",")]
        reports = []
        for seed in seeds:
            report = run_chaos(
                args.watches,
                seed,
                kills=args.kills,
                long_refusals=args.long_refusals,
                concurrency=args.concurrency,
                time_limit=args.time_limit,
                progress=say,
            )
            reports.append(report)
            print(f"\nchaos run: seed {seed}, {args.watches} watches, load after: {load()}")
            print(report.table())
            print(f"worker log: {report.log_path}")
            if report.violations:
                failed = True
                print("INVARIANTS VIOLATED:")
                for violation in report.violations:
                    print(f"- {violation}")
            else:
                print("all invariants hold")
        if len(reports) > 1:
            print(f"\nchaos runs: seeds {','.join(map(str, seeds))}")
            print(summary_table([r.figures() for r in reports], "figure"))
    if args.scenario in ("window", "all"):
        windows = (DEPLOYED_WINDOW, args.short_window)
        by_window: dict[float, list[WindowReport]] = defaultdict(list)
        for n in range(args.window_runs):
            for report in run_windows(windows, lock_duration=args.window_lock):
                by_window[report.window].append(report)
            say(f"  window run {n + 1}/{args.window_runs} done")
        print(
            f"\nwindow runs: lock {args.window_lock:g} s, MaxDeliveryCount {MAX_DELIVERY_COUNT}, "
            f"{args.window_runs} runs per window, load after: {load()}"
        )
        print(window_table([r for w in windows for r in by_window[w]]))
        for window in windows:
            runs = by_window[window]
            print(f"\nwindow {window:g} s ({len(runs)} runs)")
            print(summary_table([r.figures() for r in runs], "figure"))
            expect = window < args.window_lock
            for r in runs:
                for problem in r.problems(expect_hazard=expect):
                    failed = True
                    print(f"- PROBLEM ({window:g} s window): {problem}")
        print(
            "\nexpected: no repeat kept inside the 1 h window; with a window shorter than the "
            "lock duration, a repeat that comes a lock period later is kept (a duplicate "
            "terminal event, a forked chain)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
