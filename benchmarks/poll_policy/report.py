"""Figures of a run, measured against the oracle, and how they are printed.

Lag is measured from an operation's real end to the answer that reported it; relative lag
divides it by the operation's duration. The oracle (``oracle_lags``) is the limit no
compliant poller can beat. Per operation, *excess* = lag - oracle lag (seconds) and
*relative excess* = excess / duration; their p95 over the operations is reported, next
to the ratio of the relative-lag p95 to the oracle's (the target: <= 1.10).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from benchmarks.poll_policy.simulation import Result, percentile
from benchmarks.poll_policy.workload import Operation

Row = dict[str, float]


def measure(result: Result, oracle: Sequence[float], operations: Sequence[Operation]) -> Row:
    """Every figure of one run. Missed operations count as infinite lag."""
    n = result.operations
    reads = sum(result.reads)
    throttled = sum(result.throttled)
    durations = result.durations
    relative = result.relative_lag
    oracle_rel = [lag / d for lag, d in zip(oracle, durations, strict=True)]
    excess = [lag - o for lag, o in zip(result.lag, oracle, strict=True)]
    excess_rel = [e / d for e, d in zip(excess, durations, strict=True)]
    ra = [op.retry_after is not None for op in operations]

    def p95(values: Sequence[float], where: bool | None = None) -> float:
        chosen = [v for v, r in zip(values, ra, strict=True) if where is None or r is where]
        return percentile(chosen, 95) if chosen else 0.0

    return {
        "reads": reads / n,
        "reads_p95": percentile(result.reads, 95),
        "lag_p50": percentile(result.lag, 50),
        "lag_p95": percentile(result.lag, 95),
        "lag_max": max(result.lag),
        "rel_p50": percentile(relative, 50),
        "rel_p95": p95(relative),
        "rel_p95_ra": p95(relative, True),
        "rel_p95_nora": p95(relative, False),
        "oracle_rel_p95": p95(oracle_rel),
        "ratio": p95(relative) / p95(oracle_rel),
        "excess_p95": p95(excess),
        "excess_p95_ra": p95(excess, True),
        "excess_p95_nora": p95(excess, False),
        "excess_rel_p95": p95(excess_rel),
        "excess_rel_p95_ra": p95(excess_rel, True),
        "excess_rel_p95_nora": p95(excess_rel, False),
        "missed_pct": 100.0 * result.missed / n,
        "throttled": float(throttled),
        "throttled_pct": 100.0 * throttled / reads if reads else 0.0,
        "early": float(result.early),
    }


def oracle_row(oracle: Sequence[float], operations: Sequence[Operation]) -> Row:
    """The oracle's own figures (it reads without limit: no read count)."""
    relative = [lag / op.duration for lag, op in zip(oracle, operations, strict=True)]
    ra = [op.retry_after is not None for op in operations]
    with_ra = [v for v, r in zip(relative, ra, strict=True) if r]
    return {
        "reads": math.nan,
        "lag_p50": percentile(oracle, 50),
        "lag_p95": percentile(oracle, 95),
        "lag_max": max(oracle),
        "rel_p50": percentile(relative, 50),
        "rel_p95": percentile(relative, 95),
        "rel_p95_ra": percentile(with_ra, 95),
        "rel_p95_nora": 0.0,
        "oracle_rel_p95": percentile(relative, 95),
        "ratio": 1.0,
        "excess_p95": 0.0,
        "excess_p95_ra": 0.0,
        "excess_p95_nora": 0.0,
        "excess_rel_p95": 0.0,
        "excess_rel_p95_ra": 0.0,
        "excess_rel_p95_nora": 0.0,
        "missed_pct": 0.0,
        "throttled": 0.0,
        "throttled_pct": 0.0,
        "early": 0.0,
    }


def reference_row(
    name: str, lags: Sequence[float], oracle: Sequence[float], operations: Sequence[Operation]
) -> Row:
    """The figures of a reference schedule given only its lags (it reads without limit:
    no read count)."""
    n = len(operations)
    result = Result(
        name=name,
        reads=[0] * n,
        throttled=[0] * n,
        lag=list(lags),
        durations=[op.duration for op in operations],
        sends_retry_after=[op.retry_after is not None for op in operations],
        early=0,
        outcomes_ok=True,
        stopped=[op.end + lag for op, lag in zip(operations, lags, strict=True)],
    )
    row = measure(result, oracle, operations)
    row["reads"] = row["reads_p95"] = math.nan
    return row


# -- formatting -----------------------------------------------------------------------


def seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "miss"
    return f"{value:.1f} s" if value < 100 else f"{value:,.0f} s"


def percent(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "miss" if math.isinf(value) else f"{100 * value:.1f} %"


def number(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


Column = tuple[str, str, Callable[[float], str]]

SPREAD_COLUMNS: list[Column] = [
    ("reads/op", "reads", number),
    ("lag p50", "lag_p50", seconds),
    ("p95", "lag_p95", seconds),
    ("rel p95", "rel_p95", percent),
    ("RA", "rel_p95_ra", percent),
    ("no RA", "rel_p95_nora", percent),
    ("x oracle", "ratio", lambda v: f"{v:.3f}"),
    ("excess p95", "excess_p95", seconds),
    ("rel excess p95", "excess_rel_p95", percent),
    ("missed", "missed_pct", lambda v: f"{v:.1f} %"),
    ("429s", "throttled_pct", lambda v: f"{v:.2f} %"),
]

FLEET_COLUMNS: list[Column] = [
    ("reads/op", "reads", number),
    ("lag p50", "lag_p50", seconds),
    ("p95", "lag_p95", seconds),
    ("max", "lag_max", seconds),
    ("rel p95", "rel_p95", percent),
    ("missed", "missed_pct", lambda v: f"{v:.1f} %"),
    ("429s", "throttled", lambda v: f"{v:,.0f}"),
    ("% reads", "throttled_pct", lambda v: f"{v:.2f} %"),
]


def table(title: str, rows: Sequence[tuple[str, Row]], columns: Sequence[Column]) -> str:
    """A Markdown table, one row per (name, figures)."""
    lines = [f"\n{title}\n"]
    lines.append("| policy | " + " | ".join(name for name, _, _ in columns) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    for name, row in rows:
        cells = [fmt(row[key]) for _, key, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread_of(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """min / **median** / max over seeds."""
    if all(math.isnan(v) for v in values):
        return "-"
    finite = sorted(values)
    return f"{fmt(finite[0])} / **{fmt(statistics.median(finite))}** / {fmt(finite[-1])}"


def seeds_table(
    title: str, rows: Sequence[tuple[str, Sequence[Row]]], columns: Sequence[Column]
) -> str:
    """A Markdown table of min / median / max over seeds, one row per policy."""
    lines = [f"\n{title}\n"]
    lines.append("| policy | " + " | ".join(name for name, _, _ in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for name, per_seed in rows:
        cells = [spread_of([r[key] for r in per_seed], fmt) for _, key, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median(rows: Sequence[Row], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))
