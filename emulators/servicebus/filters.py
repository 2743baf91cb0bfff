"""Subscription filters: correlation-style mappings and the SQL subset the template uses.

A filter is a mapping of property → value that every key must equal (plain keys are
application properties, ``sys.<name>`` keys system properties). ``parse_sql_filter``
compiles exactly the SQL the deployment template uses into such a mapping, an ``IN``
list becoming an ``AnyOf`` value; anything else is refused with a ``ConfigError`` rather
than matched differently from Service Bus (see this package's README for the source).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["SYSTEM_FILTER_KEYS", "AnyOf", "check_filter", "parse_sql_filter"]

#: ``sys.<key>`` filter keys and the AMQP properties field each one reads.
SYSTEM_FILTER_KEYS: Mapping[str, str] = {
    "message_id": "message_id",
    "messageid": "message_id",
    "correlation_id": "correlation_id",
    "correlationid": "correlation_id",
    "subject": "subject",
    "label": "subject",
    "content_type": "content_type",
    "contenttype": "content_type",
    "to": "to",
    "reply_to": "reply_to",
    "replyto": "reply_to",
    "session_id": "group_id",
    "sessionid": "group_id",
    "reply_to_session_id": "reply_to_group_id",
    "replytosessionid": "reply_to_group_id",
}


def check_filter(filter_: Mapping[str, Any] | None) -> None:
    """Refuse a filter mapping the broker could not evaluate (bad keys, unknown sys.*)."""
    if filter_ is None:
        return
    if not isinstance(filter_, Mapping):
        raise ConfigError(f"a subscription filter must be a mapping, not {filter_!r}")
    for key in filter_:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"filter keys must be non-empty strings, not {key!r}")
        if key.lower().startswith("sys.") and key[4:].lower() not in SYSTEM_FILTER_KEYS:
            known = ", ".join(sorted({f"sys.{k}" for k in SYSTEM_FILTER_KEYS if "_" in k}))
            raise ConfigError(f"unknown system property in filter: {key!r} (known: {known})")


class AnyOf:
    """A filter value equal to any of ``values``: what SQL ``prop IN (...)`` compiles to.

    The broker compares a filter value with the message's property by ``==``, so this
    matches when the property equals one of the values; two ``AnyOf`` are equal when they
    hold the same values.
    """

    __slots__ = ("values",)

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = tuple(values)
        if not self.values:
            raise ConfigError("AnyOf needs at least one value")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AnyOf):
            return frozenset(self.values) == frozenset(other.values)
        return any(type(other) is type(value) and other == value for value in self.values)

    def __hash__(self) -> int:
        return hash(frozenset(self.values))

    def __repr__(self) -> str:
        return f"AnyOf({list(self.values)!r})"


_SQL_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)"
    r"|(?P<punct>[=(),]))",
    re.ASCII,
)


def parse_sql_filter(expression: str) -> dict[str, Any]:
    """Compile the SQL filter subset the template uses into a filter mapping.

    ``status = 'Succeeded'`` -> ``{"status": "Succeeded"}``; ``status IN ('Failed',
    'Canceled')`` -> ``{"status": AnyOf(["Failed", "Canceled"])}``; ``user.status`` is
    ``status``; ``sys.CorrelationId`` is ``sys.correlationid``. Raises ``ConfigError``
    for anything outside that subset.
    """
    if not isinstance(expression, str):
        raise ConfigError(f"sql_filter must be a string, not {expression!r}")
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _SQL_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _unsupported(expression, f"unexpected text at {text[position:].strip()!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()

    def take(kind: str, value: str | None = None) -> str:
        if not tokens:
            raise _unsupported(expression, "it ends too early")
        got_kind, got = tokens.pop(0)
        matches = got.upper() == value if value is not None and kind == "name" else got == value
        if got_kind != kind or (value is not None and not matches):
            raise _unsupported(expression, f"unexpected {got!r}")
        return got

    name = take("name")
    scope, dot, property_name = name.rpartition(".")
    if dot and scope.lower() not in ("sys", "user"):
        raise _unsupported(expression, f"unknown scope {scope!r} (sys or user)")
    if name.upper() in _SQL_KEYWORDS or property_name.upper() in _SQL_KEYWORDS:
        raise _unsupported(expression, f"{name!r} is a keyword, not a property")
    key = f"sys.{property_name}" if scope.lower() == "sys" else property_name
    if tokens and tokens[0] == ("punct", "="):
        take("punct", "=")
        value: Any = _sql_string(take("string"))
    elif tokens and tokens[0][0] == "name" and tokens[0][1].upper() == "IN":
        take("name", "IN")
        take("punct", "(")
        values = [_sql_string(take("string"))]
        while tokens and tokens[0] == ("punct", ","):
            take("punct", ",")
            values.append(_sql_string(take("string")))
        take("punct", ")")
        value = AnyOf(values)
    else:
        raise _unsupported(expression, "expected = or IN after the property")
    if tokens:
        raise _unsupported(expression, f"unexpected {tokens[0][1]!r} after the predicate")
    filter_ = {key: value}
    check_filter(filter_)
    return filter_


_SQL_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "EXISTS", "ESCAPE"})


def _sql_string(token: str) -> str:
    return token[1:-1].replace("''", "'")


def _unsupported(expression: str, why: str) -> ConfigError:
    return ConfigError(
        f"unsupported SQL filter {expression!r} ({why}): the emulator knows only "
        "\"prop = 'text'\" and \"prop IN ('a', ...)\", the subset the deployment template uses"
    )
