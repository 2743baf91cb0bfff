"""The request-response nodes: ``$cbs`` (put-token) and ``<entity>/$management``.

This module owns what happens to a request once its transfer has arrived: decoding it,
checking the token or the right it needs (``auth``), running a management operation
(``management``), and queueing the reply for the client's reply link on that address
until the link has credit. The reactor handler (``amqp``) accepts the request transfer
and calls these; replies are fire-and-forget, as the SDK never settles them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from .auth import Authorizer, TokenRejectedError, UnauthorizedError
from .broker import Broker, entity_path
from .codec import MalformedMessageError, encode_amqp_value_message, parse_message, to_plain
from .connections import CBS_NODE, Connection, ServerStats
from .management import handle_management_request

__all__ = ["answer_management", "answer_put_token", "flush_replies", "send_reply"]

_LOG = logging.getLogger(__name__)


def answer_put_token(
    conn: Connection | None, raw: bytes, *, authorizer: Authorizer, stats: ServerStats
) -> None:
    """A CBS put-token request: verify the token for its audience, keep the grant on the
    connection and queue the status reply. Tokens are recorded in ``stats``, never logged."""
    try:
        request = parse_message(raw)
    except MalformedMessageError as exc:
        _LOG.info("malformed CBS request: %s", exc)
        return
    props = {str(k): to_plain(v) for k, v in request.application_properties.items()}
    audience = str(props.get("name", ""))
    body = request.body_value
    token = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    token = token if isinstance(token, str) else ""
    with stats.lock:
        stats.cbs_tokens.append((audience, token))
        reject = stats.reject_cbs
    if reject:
        status, text = 401, "Unauthorized: tokens are rejected"
        _LOG.debug("put-token for %s rejected (reject_cbs)", audience)
    else:
        try:
            grant = authorizer.put_token(audience, token)
        except TokenRejectedError as exc:
            status, text = exc.status_code, exc.description
            path = entity_path(audience).lower()
            with stats.lock:
                stats.authorization_failures.append((path, exc.reason))
            # Tokens are credentials: log the audience and the reason only.
            _LOG.info("put-token for %s refused: %s", audience, exc.reason)
        else:
            status, text = 202, "Accepted"
            if conn is not None:
                conn.grants[grant.audience] = grant
            _LOG.debug("put-token for %s accepted (%s)", audience, grant.identity)
    reply = encode_amqp_value_message(
        body=None,
        correlation_id=request.properties.message_id,
        application_properties={"status-code": status, "status-description": text},
    )
    if conn is not None:
        send_reply(conn, CBS_NODE, reply)


def answer_management(
    conn: Connection | None,
    address: str,
    raw: bytes,
    *,
    broker: Broker,
    authorize: Callable[[Connection, str, str | None], None],
) -> bool:
    """A request to ``<entity>/$management`` (``address``): run it (``management``), each
    operation checked with ``authorize(conn, entity, right)``, and queue the reply. False
    if the request could not be decoded (nothing was done)."""
    try:
        request = parse_message(raw)
    except MalformedMessageError as exc:
        _LOG.info("malformed management request: %s", exc)
        return False
    props = {str(k): to_plain(v) for k, v in request.application_properties.items()}
    operation = str(props.get("operation", ""))
    entity = address.rsplit("/", 1)[0]

    def authorize_right(right: str) -> None:
        if conn is None:
            raise UnauthorizedError("Unauthorized access: the connection is gone.")
        authorize(conn, entity, right)

    reply = handle_management_request(
        broker, entity, operation, request.body_value, authorize_right
    )
    _LOG.debug("%s on %s -> %d", operation, entity, reply.status_code)
    encoded = encode_amqp_value_message(
        body=reply.body,
        correlation_id=request.properties.message_id,
        application_properties=reply.application_properties(),
    )
    reply_to = (request.properties.reply_to or address).lower()
    if conn is not None:
        send_reply(conn, entity_path(reply_to), encoded)
    return True


def send_reply(conn: Connection, address: str, payload: bytes) -> None:
    """Queue a reply for the client's reply link on ``address`` and send what credit allows."""
    conn.pending_replies.setdefault(address, deque()).append(payload)
    flush_replies(conn, address)


def flush_replies(conn: Connection, address: str) -> None:
    """Send queued replies on ``address`` while its reply link has credit."""
    link = conn.reply_links.get(address)
    pending = conn.pending_replies.get(address)
    if link is None or not pending:
        return
    while pending and link.credit > 0:
        conn.reply_tag += 1
        delivery = link.delivery(conn.reply_tag.to_bytes(8, "big"))
        link.send(pending.popleft())
        link.advance()
        delivery.settle()  # replies are fire-and-forget; the SDK never settles them
