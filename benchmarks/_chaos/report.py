"""``ChaosReport``: the figures of one chaos run, its invariants and its table."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import (
    EXPECTED_TYPE,
    MAX_DELIVERY_COUNT,
    SAMPLER_SLACK,
)
from .harness import (
    Sampler,
)
from .plan import Watch
from .seam import EntitySends, sends_table


@dataclass
class ChaosReport:
    watches: int
    outcomes: Counter[str]
    faults: Counter[str]
    terminal_events: int
    dead_lettered: int
    dead_letter_reasons: Counter[str]
    lost: list[str]
    duplicates: int
    duplicate_ids: int
    forks: int
    most_scheduled: int
    scheduled_after_terminal: list[str]
    late_reads: int
    late_reads_max: int
    wrong_outcome: Counter[str]
    arm_reads_mean: float
    arm_reads_max: int
    wall_time: float
    worker_log_counts: Counter[str]
    queue_left: int
    duplicates_dropped: dict[str, int]
    log_path: str
    sends: dict[str, EntitySends] = field(default_factory=dict)
    dead_lettered_by_queue: dict[str, int] = field(default_factory=dict)
    events_per_watch: Counter[int] = field(default_factory=Counter)
    seed: int = 0

    @property
    def violations(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} watches lost: {self.lost[:5]}")
        if self.duplicates or self.duplicate_ids:
            found.append(f"{self.duplicates} duplicate events ({self.duplicate_ids} by id)")
        if self.forks:
            found.append(f"{self.forks} operations had more than one scheduled poll")
        polls = self.sends.get("polls")
        if polls is not None and polls.kept_twice:
            found.append(f"{polls.kept_twice} poll MessageIds kept twice by the polls queue")
        topic = self.sends.get("topic")
        if topic is not None and topic.kept != self.terminal_events:
            found.append(
                f"the topic kept {topic.kept} events but the harness received "
                f"{self.terminal_events}"
            )
        if self.scheduled_after_terminal:
            found.append(
                f"scheduled polls after the terminal event: {self.scheduled_after_terminal}"
            )
        if self.late_reads_max >= MAX_DELIVERY_COUNT:
            found.append(f"up to {self.late_reads_max} ARM reads after a terminal event")
        if self.queue_left:
            found.append(f"{self.queue_left} messages left on the queues")
        return found

    def figures(self) -> dict[str, float]:
        """The numeric figures, for min/median/max over several seeds."""
        out: dict[str, float] = {
            "faults injected": sum(self.faults.values()),
            "terminal events": self.terminal_events,
            "dead-lettered": self.dead_lettered,
            "lost": len(self.lost),
            "duplicate terminal events": self.duplicates,
            "forks (>1 scheduled poll)": self.forks,
            "polls scheduled after terminal": len(self.scheduled_after_terminal),
            "ARM reads after terminal": self.late_reads,
            "ARM reads per watch (mean)": self.arm_reads_mean,
            "wall time (s)": self.wall_time,
        }
        for name, s in self.sends.items():
            out[f"{name}: tried"] = s.tried
            out[f"{name}: failed at the seam"] = s.failed
            out[f"{name}: distinct MessageIds"] = s.distinct_ids
            out[f"{name}: received by the broker"] = s.received
            out[f"{name}: duplicates dropped"] = s.dropped
            out[f"{name}: kept"] = s.kept
            out[f"{name}: kept twice"] = s.kept_twice
        return out

    def table(self) -> str:
        rows = [
            ("watches", f"{self.watches} ({_fmt(self.outcomes)})"),
            ("faults injected", f"{sum(self.faults.values())}"),
            *((f"&nbsp;&nbsp;{kind}", str(n)) for kind, n in sorted(self.faults.items())),
            ("terminal events", str(self.terminal_events)),
            (
                "events per watch",
                ", ".join(
                    f"{n} event{'s' if n != 1 else ''}: {c} watches"
                    for n, c in sorted(self.events_per_watch.items())
                ),
            ),
            (
                "dead-lettered",
                f"{self.dead_lettered} ({_fmt(Counter(self.dead_lettered_by_queue))}; "
                f"{_fmt(self.dead_letter_reasons)})",
            ),
            ("lost", str(len(self.lost))),
            ("duplicate terminal events", f"{self.duplicates} (by event id: {self.duplicate_ids})"),
            (
                "forks (>1 scheduled poll)",
                f"{self.forks} (most seen at once: {self.most_scheduled})",
            ),
            ("polls scheduled after terminal", str(len(self.scheduled_after_terminal))),
            ("ARM reads after terminal", f"{self.late_reads} (max per op {self.late_reads_max})"),
            (
                "outcome differs from script",
                f"{sum(self.wrong_outcome.values())} {_fmt(self.wrong_outcome)}",
            ),
            ("ARM reads per watch", f"mean {self.arm_reads_mean:.1f}, max {self.arm_reads_max}"),
            ("duplicates dropped by SB", _fmt(Counter(self.duplicates_dropped))),
            ("worker log lines", _fmt(self.worker_log_counts)),
            ("left on the queues", str(self.queue_left)),
            ("wall time", f"{self.wall_time:.1f} s"),
        ]
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines) + "\n\n" + sends_table(self.sends)


def _fmt(counter: Counter[Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"


def correlation_of(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("correlationId")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def build_report(
    plan: list[Watch],
    events: dict[str, list[dict[str, Any]]],
    event_ids: Counter[str],
    dead_letters: list[Any],
    arm_requests: list[Any],
    sampler: Sampler,
    faults: Counter[str],
    wall: float,
    log_path: Path,
    queue_left: int,
    duplicates_dropped: dict[str, int],
) -> ChaosReport:
    dead_reasons: Counter[str] = Counter()
    dead_by_correlation: set[str] = set()
    for message in dead_letters:
        dead_reasons[message.dead_letter_reason or "(no reason)"] += 1
        correlation = correlation_of(message.body)
        if correlation and message.dead_letter_reason:
            dead_by_correlation.add(correlation)
    reads: dict[str, list[float]] = defaultdict(list)
    for request in arm_requests:
        if request.operation_id:
            reads[request.operation_id].append(request.received_at)
    lost, wrong = [], Counter[str]()
    late_total, late_max = 0, 0
    scheduled_after: list[str] = []
    for watch in plan:
        got = events.get(watch.correlation_id, [])
        if not got and watch.correlation_id not in dead_by_correlation:
            lost.append(watch.correlation_id)
        if got and got[0]["type"] != EXPECTED_TYPE[watch.outcome]:
            reason = got[0]["data"].get("reason") or got[0]["type"].rsplit(".", 1)[-1]
            wrong[f"{watch.outcome}->{reason}"] += 1
        if got and watch.operation_id:
            finished = datetime.fromisoformat(got[0]["data"]["finishedAt"].replace("Z", "+00:00"))
            finished_at = finished.timestamp()
            late = sum(1 for t in reads[watch.operation_id] if t > finished_at + 0.5)
            late_total += late
            late_max = max(late_max, late)
            seen = sampler.last_scheduled.get(watch.operation_id)
            if seen is not None and seen > finished_at + SAMPLER_SLACK:
                scheduled_after.append(watch.operation_id)
    per_watch = [len(reads[w.operation_id]) for w in plan if w.operation_id]
    return ChaosReport(
        watches=len(plan),
        outcomes=Counter(w.outcome for w in plan),
        faults=faults,
        terminal_events=sum(len(v) for v in events.values()),
        dead_lettered=len(dead_letters),
        dead_letter_reasons=dead_reasons,
        lost=lost,
        duplicates=sum(len(v) - 1 for v in events.values() if len(v) > 1),
        duplicate_ids=sum(n - 1 for n in event_ids.values() if n > 1),
        forks=sum(1 for n in sampler.most.values() if n > 1),
        most_scheduled=max(sampler.most.values(), default=0),
        scheduled_after_terminal=scheduled_after,
        late_reads=late_total,
        late_reads_max=late_max,
        wrong_outcome=wrong,
        arm_reads_mean=sum(per_watch) / len(per_watch) if per_watch else 0.0,
        arm_reads_max=max(per_watch, default=0),
        wall_time=wall,
        worker_log_counts=_log_counts(log_path),
        queue_left=queue_left,
        duplicates_dropped=duplicates_dropped,
        log_path=str(log_path),
        events_per_watch=Counter(len(events.get(w.correlation_id, [])) for w in plan),
    )


def _log_counts(log_path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            for marker in (
                "worker.abandoning",
                "worker.settle_failed",
                "worker.waiting_for_service_bus",
                "worker.still_waiting_for_service_bus",
                "servicebus.send_failed",
                "watch.send_failed_waiting",
                "watch.finished",
                "watch.rejected",
                "Traceback",
            ):
                if marker in line:
                    counts[marker] += 1
    return counts
