"""Reading a JSON object out of bytes someone else wrote, the one way ops-status does it.

ARM's response bodies, events on the topic and refused watch requests are all read with
``json_object``: never raises, returns ``None`` for anything that is not a JSON object
(not UTF-8, not JSON, nested past the recursion limit, an array or a scalar), and turns
the non-standard ``NaN``/``Infinity`` constants into ``null`` so no float surprise
reaches a consumer. (Watch requests, whose problems must be listed, are parsed strictly
by ``ops_status.request`` instead.)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_object"]


def json_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object ``body`` holds, or ``None``."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=lambda _: None)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
