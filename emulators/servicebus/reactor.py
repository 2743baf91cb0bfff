"""Keeping proton's reactor loop running and its log readable.

This module owns ``guarded``, the decorator every event method of the AMQP handler
wears (an exception escaping into proton's reactor loop would stop every connection: it
is logged and only the offending connection is closed), and the filter that drops
proton's ERROR records for clients that vanish mid-write, routine for a broker.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .connections import condition as _condition

__all__ = ["guarded", "quiet_proton_disconnects"]

_LOG = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., None])


class _QuietDisconnects(logging.Filter):
    """proton's IO handler logs a client that vanishes mid-write at ERROR ("Couldn't send:
    BrokenPipeError"). For a broker that is routine (the SDK closes sockets without
    waiting for our close frame; tests drop connections on purpose), so those records
    are dropped; every other proton record passes."""

    _ROUTINE = ("BrokenPipeError", "ConnectionResetError", "ConnectionAbortedError")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith(("Couldn't send", "Couldn't recv"))
            and any(name in message for name in self._ROUTINE)
        )


_PROTON_FILTER = _QuietDisconnects()


def quiet_proton_disconnects() -> None:
    proton_logger = logging.getLogger("proton")
    if _PROTON_FILTER not in proton_logger.filters:
        proton_logger.addFilter(_PROTON_FILTER)


def guarded(method: _F) -> _F:
    """Never let an exception escape into proton's reactor loop (it would stop every
    connection). Log it and close the offending connection with an internal error."""

    @functools.wraps(method)
    def wrapper(self: Any, event: Any, *args: Any) -> None:
        try:
            method(self, event, *args)
        except Exception:  # noqa: BLE001 - an escaping error would stop the whole reactor
            _LOG.exception("emulator error in %s", method.__name__)
            connection = getattr(event, "connection", None)
            if connection is not None:
                try:
                    connection.condition = _condition(
                        "amqp:internal-error", "Service Bus emulator internal error"
                    )
                    connection.close()
                except Exception:  # noqa: BLE001 - best effort on an already broken connection
                    _LOG.debug("could not close the connection", exc_info=True)

    return wrapper  # type: ignore[return-value]
