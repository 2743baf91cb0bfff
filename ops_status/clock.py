"""Time: the one place that reads the wall clock and the one RFC 3339 format we write.

The core never calls ``utcnow()`` itself: the shell reads the clock once per message
and passes ``now`` in, so decisions are reproducible in tests.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["format_time", "parse_time", "utcnow"]

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix, as ARM writes it."""
    utc = moment.astimezone(timezone.utc)
    # Not strftime("%Y"): glibc writes year 1 as "1", which fromisoformat cannot read back.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a zone (``Z`` or an offset).

    Raises ``ValueError`` for anything else: naive timestamps, surrounding whitespace, and
    moments that exist only in their own zone (``0001-01-01T00:00:00+14:00`` is before
    the first representable UTC instant, so converting it would raise ``OverflowError``).
    """
    if len(text) > 40:
        raise ValueError("timestamp too long")
    # RFC 3339 only: fromisoformat alone also takes a space for "T", week dates, basic
    # formats, hour-only times and a NUL next to the zone.
    if not _RFC3339.fullmatch(text):
        raise ValueError("not an RFC 3339 timestamp")
    value = text
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("timestamp is outside the representable range in UTC") from None
