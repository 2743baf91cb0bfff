"""Building the JSON documents the input classes vary, and reproducible examples."""

from __future__ import annotations

import json
from typing import Any

from .properties import (
    SUB,
)


def intake_doc(**fields: Any) -> dict[str, Any]:
    return {"subscriptionId": SUB, "location": "westus", "operationId": "op-1", **fields}


def to_json(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def nested_value(kind: str, levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value} if kind == "object" else [value]
    return value


def with_path(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the dotted ``path`` set to ``value``."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = value
    return copy


def renamed(document: dict[str, Any], path: str, new_key: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target[name]
    target[new_key] = target.pop(last)
    return copy


def nested_text(kind: str, levels: int, leaf: str = "1") -> str:
    """JSON text nested ``levels`` deep, built as text: ``json.dumps`` itself recurses."""
    if kind == "object":
        return '{"a":' * levels + leaf + "}" * levels
    return "[" * levels + leaf + "]" * levels


def splice(document: dict[str, Any], path: str, raw: str) -> bytes:
    """``document`` as JSON with the dotted ``path`` set to the JSON text ``raw``."""
    head, _, rest = path.partition(".")
    if rest:
        inner = document.get(head) or {}
        raw = splice(inner, rest, raw).decode("utf-8", "surrogatepass")
    body = {k: v for k, v in document.items() if k != head}
    text = json.dumps(body, ensure_ascii=False)
    joined = (text[:-1] + ", " if body else "{") + f"{json.dumps(head)}: {raw}}}"
    return joined.encode("utf-8", "surrogatepass")


def examples_of(strategy: Any, count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy``, reproducibly (no shrinking, no database)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    found: list[Any] = []

    @fix_seed(seed)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        found.append(example)

    if count > 0:
        collect()
    return found
