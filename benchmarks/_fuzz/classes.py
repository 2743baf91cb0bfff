"""Running the chosen input classes (``run_classes``) and their table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .amqp_class import AmqpRun, run_amqp_class
from .depth import depth_cases
from .harness import CLASSES, Case, ClassTally, HandlerHarness
from .text import unicode_digit_cases, whitespace_cases
from .timestamps import (
    EXTREME_TIMES,
    FORMAT_VARIANTS,
    extreme_neighbours,
    random_timestamps,
    timestamp_cases,
)


@dataclass
class ClassReport:
    tallies: dict[str, ClassTally]
    amqp: AmqpRun | None
    wall_time: dict[str, float]

    @property
    def escaped(self) -> int:
        return sum(t.escaped for t in self.tallies.values())

    @property
    def violations(self) -> int:
        return sum(t.violations for t in self.tallies.values())


def run_classes(
    classes: Iterable[str] = CLASSES,
    *,
    examples: int = 1000,
    seed: int = 1,
    quick: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> ClassReport:
    """Generate and run every chosen class; see the module docstring. ``quick`` (for the
    smoke test) sweeps depth 1-64 and a third of the fixed extremes, and generates
    nothing at random."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    harness = HandlerHarness()
    tallies: dict[str, ClassTally] = {}
    walls: dict[str, float] = {}
    amqp = None
    for name in classes:
        started = time.monotonic()
        tally = ClassTally()
        if quick:
            examples = 0
        if name == "depth":
            cases: Iterable[Case] = depth_cases(harness, top=64 if quick else 2000)
        elif name == "timestamps":
            values = (
                EXTREME_TIMES[::3]
                if quick
                else [
                    *EXTREME_TIMES,
                    *extreme_neighbours(),
                    *FORMAT_VARIANTS,
                    *random_timestamps(examples, seed),
                ]
            )
            cases = timestamp_cases(harness, values)
        elif name == "whitespace":
            cases = whitespace_cases(harness)
        elif name == "unicode-digits":
            cases = unicode_digit_cases(harness, random_count=examples, seed=seed)
        elif name == "amqp-bodies":
            amqp = run_amqp_class(max(examples // 10, 0), seed)
            tally = amqp.tally
            cases = ()
        else:
            raise ValueError(f"unknown class {name!r}; expected one of {CLASSES}")
        for case in cases:
            harness.run(case, tally)
        tallies[name] = tally
        walls[name] = time.monotonic() - started
        progress(f"  {name}: {tally.generated} generated in {walls[name]:.1f} s")
    return ClassReport(tallies, amqp, walls)


def format_classes(report: ClassReport) -> str:
    lines = [
        "| class | generated | rejected | accepted | escaped (exception) "
        "| accepted off-contract | property violations | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in report.tallies.items():
        lines.append(
            f"| {name} | {t.generated:,} | {t.rejected:,} | {t.accepted:,} | {t.escaped:,} | "
            f"{t.off_contract:,} | {t.violations:,} | {report.wall_time[name]:.1f} s |"
        )
    if report.amqp is not None:
        a = report.amqp
        lines.append(
            f"\namqp-bodies: every message completed: {a.completed}; dead-lettered "
            f"{a.dead_lettered}; worker.abandoning lines {a.abandoned} (log {a.log_path})"
        )
    for name, t in report.tallies.items():
        if t.accepted_by_label:
            accepted = ", ".join(
                f"{label} {n}/{t.generated_by_label[label]}"
                for label, n in sorted(t.accepted_by_label.items())
            )
            lines.append(f"\n{name}: accepted, by what was varied: {accepted}")
        for signature, (n, example, trace) in t.escapes.items():
            lines.append(f"\n{name}: ESCAPED {n}x: {signature}\n  first input: {example}")
            lines.extend("  " + line for line in trace.rstrip().splitlines()[-12:])
        for problem, (n, example) in t.violation_examples.items():
            lines.append(f"\n{name}: VIOLATION {n}x: {problem}\n  first input: {example}")
        for reason, (n, example) in t.off_contract_examples.items():
            lines.append(
                f"\n{name}: accepted off-contract {n}x: {reason}\n  first input: {example}"
            )
    return "\n".join(lines)
