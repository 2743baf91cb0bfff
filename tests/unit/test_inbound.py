"""InboundMessage: the broker's identity of a message, and bodies that are not data sections."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus._pyamqp.message import Header, Message, Properties

from ops_status.inbound import InboundMessage, Queue

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def received(
    body: object, *, kind: str, delivery_count: int = 0, message_id: object = None
) -> ServiceBusReceivedMessage:
    """A received message as the SDK builds it from an AMQP transfer."""
    sections = {
        "data": {"data": [body]},
        "value": {"value": body},
        "sequence": {"sequence": [body]},
    }
    message = Message(
        header=Header(delivery_count=delivery_count),
        properties=Properties(message_id=message_id),
        **sections[kind],
    )
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


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (12345, "12345"),
        (b"\x00\xff", "00ff"),
        ("plain", "plain"),
    ],
)
def test_a_message_id_of_any_amqp_type_becomes_text(raw: object, text: str) -> None:
    # AMQP allows uuid, ulong and binary MessageIds; the SDK passes them through as such,
    # and a UUID in the next poll's JSON body raised TypeError on every redelivery.
    message = InboundMessage.from_sdk(received(b"{}", kind="data", message_id=raw), Queue.INTAKE)

    assert message.message_id == text


def test_a_message_without_a_sequence_number_has_no_delivery_key() -> None:
    with pytest.raises(ValueError, match="sequence number"):
        _ = InboundMessage(Queue.INTAKE, b"{}", "m", None, T0).delivery_key
