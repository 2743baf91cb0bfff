"""InboundMessage: the broker's identity of a message, and bodies that are not data sections."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus._pyamqp.message import Header, Message

from ops_status.inbound import InboundMessage, Queue

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def received(body: object, *, kind: str, delivery_count: int = 0) -> ServiceBusReceivedMessage:
    """A received message as the SDK builds it from an AMQP transfer."""
    sections = {
        "data": {"data": [body]},
        "value": {"value": body},
        "sequence": {"sequence": [body]},
    }
    message = Message(header=Header(delivery_count=delivery_count), **sections[kind])
    return ServiceBusReceivedMessage(message, receiver=None)


def test_the_delivery_key_is_stable_per_message_and_differs_per_submission() -> None:
    one = InboundMessage(Queue.INTAKE, b"{}", "m", 7, T0)

    assert one.delivery_key == InboundMessage(Queue.INTAKE, b"x", "m", 7, T0, 3).delivery_key
    assert one.delivery_key != InboundMessage(Queue.INTAKE, b"{}", "m", 8, T0).delivery_key
    later = InboundMessage(Queue.INTAKE, b"{}", "m", 7, T0 + timedelta(hours=1))
    assert one.delivery_key != later.delivery_key
    assert one.delivery_key != InboundMessage(Queue.POLLS, b"{}", "m", 7, T0).delivery_key


def test_a_data_body_is_taken_as_bytes_and_the_delivery_count_starts_at_one() -> None:
    message = InboundMessage.from_sdk(received(b'{"a": 1}', kind="data"), Queue.INTAKE)

    assert message.body == b'{"a": 1}'
    assert message.body_problem is None
    assert message.delivery_count == 1


def test_a_string_value_body_is_refused_with_its_text_kept() -> None:
    message = InboundMessage.from_sdk(received('{"a": 1}', kind="value"), Queue.INTAKE)

    assert message.body == b'{"a": 1}'
    assert message.body_problem is not None
    assert "amqp-value" in message.body_problem


def test_a_map_body_echoes_its_keys_and_values() -> None:
    message = InboundMessage.from_sdk(
        received({b"operationId": b"op-1", "n": 2}, kind="value"), Queue.INTAKE
    )

    assert json.loads(message.body) == {"operationId": "op-1", "n": 2}
    assert message.body_problem is not None


def test_a_sequence_body_is_refused() -> None:
    message = InboundMessage.from_sdk(received(["a", 1], kind="sequence"), Queue.INTAKE)

    assert message.body_problem is not None
    assert "amqp-sequence" in message.body_problem
