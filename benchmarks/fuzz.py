"""Fuzzing the boundaries that face untrusted input, by input class and time-bounded.

    .venv/bin/python -m benchmarks.fuzz --seconds 60               # classes, then 60 s engine
    .venv/bin/python -m benchmarks.fuzz --seconds 0 --classes depth,timestamps

Two parts.

**Input classes** (``--classes``, default all): each class is generated deterministically
(a sweep) plus ``--examples`` hypothesis examples, and run through the *whole handler*
(``handle_watch_message`` with a fixed ARM answer and an in-memory output recorder), on
the intake queue and, where the class applies, on the polls queue. Every input counts as
*rejected* (one schema-valid ``Rejected`` event, no ARM read), *accepted* (one follow-up)
or *escaped* (any exception: that is a bug, a message the host would redeliver until it
is dead-lettered). For accepted inputs it also checks that the read stayed on the ARM
endpoint, that the follow-up poll message is schema-valid and is accepted again by
``parse_poll_message`` (round trip), that events are schema-valid, and whether the
published schema would have accepted the input ("accepted off-contract").

- ``depth``: nesting depth swept 1-2,000, in ``context`` (objects, arrays), an unknown
  field, ``statusUrl``, ``pollState`` and the document root;
- ``timestamps``: the representable extremes with offsets (``0001-01-01T00:00:00+14:00``,
  ``9999-12-31T23:59:59-14:00`` and their neighbours) in ``deadline`` and in the poll
  state of poll messages (``firstSeen``, ``deadline``, ``failures.*.since``), against
  several ARM answers;
- ``whitespace``: trailing (and leading) whitespace and newlines, ASCII and Unicode, on
  every string field of a submission and of a poll message;
- ``unicode-digits``: Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, Thai,
  NKo, fullwidth and mathematical digits (and superscripts) in ``apiVersion`` (parts and
  ``statusUrl``), ``timeout``, timestamps, GUIDs, ids and locations;
- ``amqp-bodies``: non-data AMQP bodies (amqp-value string, binary, numbers, map;
  amqp-sequence) sent with the real SDK to the Service Bus emulator and handled by the
  real worker (``python -m ops_status worker``): each must end as one ``Rejected`` event,
  its message completed, nothing dead-lettered.

**Engine** (``--seconds``): ``parse_watch_request`` (queue message bodies, from pipelines)
and ``classify_response`` (ARM's answers), time-bounded, with ``hypothesis`` (structured
generation from URL-confusion pieces and JSON documents) or ``atheris`` (coverage-guided
byte mutation, when installed: ``pip install atheris``). Properties:
``parse_watch_request`` raises nothing but ``InvalidWatchRequestError``; an accepted
request's ``endpoint + status_path`` stays on the configured endpoint (same scheme and
netloc, path under ``/subscriptions/``, no dot segments, no backslash/CR/LF/NUL/'#');
``classify_response`` never raises and returns a ``StatusRead`` or ``ReadFailure``.

Exit status 1 when anything escaped or a property was violated.

This file is the command line and the public surface; the parts live in
``benchmarks/_fuzz/`` (see its ``__init__``) and are re-exported here.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks._fuzz.amqp_class import (
    AmqpRun,
    amqp_bodies,
    run_amqp_class,
)
from benchmarks._fuzz.classes import (
    ClassReport,
    format_classes,
    run_classes,
)
from benchmarks._fuzz.depth import (
    depth_cases,
)
from benchmarks._fuzz.engines import (
    print_counts,
    run_atheris,
    run_hypothesis,
)
from benchmarks._fuzz.harness import (
    CLASSES,
    Case,
    ClassTally,
    HandlerHarness,
)
from benchmarks._fuzz.properties import (
    ARM,
    MAX_JSON_DEPTH,
    NOW,
    ROOT,
    SUB,
    check_request,
    check_response,
    counts,
)
from benchmarks._fuzz.text import (
    DIGIT_SYSTEMS,
    SPACES,
    SUPERSCRIPTS,
    unicode_digit_cases,
    whitespace_cases,
)
from benchmarks._fuzz.timestamps import (
    EXTREME_TIMES,
    FORMAT_VARIANTS,
    STREAK_KINDS,
    extreme_neighbours,
    random_timestamps,
    timestamp_cases,
)

__all__ = [
    "ARM",
    "CLASSES",
    "DIGIT_SYSTEMS",
    "EXTREME_TIMES",
    "FORMAT_VARIANTS",
    "MAX_JSON_DEPTH",
    "NOW",
    "ROOT",
    "SPACES",
    "STREAK_KINDS",
    "SUB",
    "SUPERSCRIPTS",
    "AmqpRun",
    "Case",
    "ClassReport",
    "ClassTally",
    "HandlerHarness",
    "amqp_bodies",
    "check_request",
    "check_response",
    "counts",
    "depth_cases",
    "extreme_neighbours",
    "format_classes",
    "main",
    "print_counts",
    "random_timestamps",
    "run_amqp_class",
    "run_atheris",
    "run_classes",
    "run_hypothesis",
    "timestamp_cases",
    "unicode_digit_cases",
    "whitespace_cases",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60, help="engine budget (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    parser.add_argument(
        "--classes", default=",".join(CLASSES), help="comma-separated input classes, or none"
    )
    parser.add_argument(
        "--examples", type=int, default=1000, help="hypothesis examples per class (default 1000)"
    )
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    status = 0
    classes = [c.strip() for c in args.classes.split(",") if c.strip() and c.strip() != "none"]
    if classes:
        import logging

        # The product logs a line per rejection: tens of thousands here. Not printed.
        product = logging.getLogger("ops_status")
        product.addHandler(logging.NullHandler())
        product.propagate = False
        started = time.monotonic()
        report = run_classes(
            classes,
            examples=args.examples,
            seed=args.seed,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        print(f"input classes: seed {args.seed}, {args.examples} hypothesis examples per class")
        print(format_classes(report))
        print(f"  wall time {time.monotonic() - started:.1f} s\n")
        if report.escaped or report.violations:
            status = 1
    if args.seconds > 0:
        if args.engine == "atheris":
            run_atheris(args.seconds, args.seed)  # exits the process itself
            return status
        started = time.monotonic()
        run_hypothesis(args.seconds, args.seed)
        print_counts("hypothesis", args.seconds)
        print(f"  wall time {time.monotonic() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
