"""The ``timestamps`` class: representable extremes with offsets, their neighbours, and
spellings ``datetime.fromisoformat`` reads but RFC 3339 does not."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone

from .documents import (
    examples_of,
    intake_doc,
    to_json,
    with_path,
)
from .harness import Case, HandlerHarness, fixed_answers

EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00.000001Z",
    "0001-01-01T13:59:59+14:00",
    "0001-01-01T13:59:59.999999+14:00",
    "0001-01-01T14:00:00+14:00",
    "0001-01-01T14:00:01+14:00",
    "0001-01-01T15:00:00+14:00",
    "0001-01-01T23:58:59+23:59",
    "0001-01-01T23:59:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T09:59:59-14:00",
    "9999-12-31T09:59:59.999999-14:00",
    "9999-12-31T10:00:00-14:00",
    "9999-12-31T08:59:59-14:00",
    "9999-12-31T00:00:00-23:59",
    "9999-12-31T00:01:00-23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T22:59:59Z",
    "9999-12-31T23:59:59+23:59",
    "10000-01-01T00:00:00Z",
    "0000-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
    "2026-11-28T12:00:00Z",
    "2026-11-28T11:59:59.999999Z",
    "2026-11-28T12:00:00.000001Z",
    "2026-11-28T12:00:00+14:00",
    "2026-11-28T12:00:00-14:00",
    "2026-11-28T12:00:00+14:01",
    "2026-11-28T12:00:00+24:00",
    "2026-11-28T12:00:00-00:00",
]

#: Not extremes but spellings: RFC 3339 says ``date-time`` (the schemas' format), while
#: ``datetime.fromisoformat`` reads more (a space, basic format, week dates, hour-only,
#: comma fractions, second offsets, offsets without a colon, a NUL before the zone).
FORMAT_VARIANTS = [
    "2026-11-28 13:00:00Z",
    "20261128T130000Z",
    "2026-W48-6T13:00:00Z",
    "2026-11-28T13Z",
    "2026-11-28T13:00Z",
    "2026-11-28T13:00:00,5Z",
    "2026-11-28T13:00:00.123456789Z",
    "2026-11-28T13:00:00+00:00:30",
    "2026-11-28T13:00:00+1400",
    "2026-11-28T13:00:00z",
    "2026-11-28t13:00:00Z",
    "2026-11-28T13:00:00\x00Z",
    "2026-11-28T13:00:00Z\x00",
    "2026-11-28T13:00:00",
    "2026-11-28",
]

#: Failure kinds whose grace runs from ``since``: an extreme ``since`` meets its arithmetic.
STREAK_KINDS = ("Transient", "TokenUnavailable", "NotFound", "Unauthorized", "Malformed")


def _format(moment: datetime, offset_minutes: int, fraction: bool) -> str:
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if fraction:
        text += f".{moment.microsecond:06d}"
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def timestamp_cases(harness: HandlerHarness, values: Iterable[str]) -> Iterator[Case]:
    template = harness.poll_template
    far = "9999-12-31T23:59:59.999Z"
    answers = fixed_answers()
    for value in values:
        for answer in answers:
            yield Case("deadline", "intake", to_json(intake_doc(deadline=value)), answer)
            yield Case(
                "pollState.firstSeen",
                "polls",
                to_json(
                    with_path(
                        with_path(template, "pollState.firstSeen", value),
                        "pollState.deadline",
                        far,
                    )
                ),
                answer,
            )
            yield Case(
                "pollState.deadline",
                "polls",
                to_json(with_path(template, "pollState.deadline", value)),
                answer,
            )
            both = with_path(template, "pollState.firstSeen", value)
            yield Case(
                "pollState.firstSeen = deadline",
                "polls",
                to_json(with_path(both, "pollState.deadline", value)),
                answer,
            )
            since = with_path(
                template,
                "pollState.failures",
                {kind: {"count": 1, "since": value} for kind in STREAK_KINDS},
            )
            yield Case("pollState.failures.since", "polls", to_json(since), answer)
            first = with_path(template, "pollState.firstSeen", "0001-01-01T00:00:00Z")
            yield Case(
                "pollState.deadline (first seen 0001)",
                "polls",
                to_json(with_path(first, "pollState.deadline", value)),
                answer,
            )


def extreme_neighbours() -> list[str]:
    low = datetime(1, 1, 1, tzinfo=timezone.utc)
    high = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    values = []
    for edge, steps in (
        (low, (0, 1, 1_000_000, 3_600_000_000)),
        (high, (0, -1, -1_000_000, -3_600_000_000)),
    ):
        for step in steps:
            moment = edge + timedelta(microseconds=step)
            for offset in (0, 14 * 60, -14 * 60, 23 * 60 + 59, -(23 * 60 + 59), 1, -1):
                # the local time that, at this offset, names ``moment``, when it is representable
                try:
                    local = (moment + timedelta(minutes=offset)).replace(tzinfo=None)
                except OverflowError:
                    continue
                values.append(_format(local, offset, fraction=True))
                # the same wall time at the other sign: just outside the range
                values.append(_format(local, -offset, fraction=True))
    return sorted(set(values))


def random_timestamps(count: int, seed: int) -> list[str]:
    from hypothesis import strategies as st

    moments = st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
    )
    strategy = st.builds(
        _format,
        moments,
        st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
        st.booleans(),
    )
    return examples_of(strategy, count, seed)
