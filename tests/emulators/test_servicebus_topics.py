"""Topics and subscription filters through the SDK."""

from __future__ import annotations

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators.servicebus import ServiceBusEmulator

from .conftest import TOPIC, receive_exactly, subscription_receiver, topic_sender

SUBSCRIPTIONS = (
    "all",
    "failed",
    "failed-westus",
    "by-subject",
    "by-correlation",
    "by-content-type",
    "by-message-id",
)


def _copies(emulator: ServiceBusEmulator) -> dict[str, int]:
    return {
        name: emulator.active_count(f"{TOPIC}/subscriptions/{name}")
        for name in SUBSCRIPTIONS
        if emulator.active_count(f"{TOPIC}/subscriptions/{name}")
    }


def test_message_is_copied_to_every_matching_subscription(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a topic with a catch-all and property-filtered subscriptions
    with topic_sender(client) as sender:
        # when a failed event in westus and a succeeded one are published
        sender.send_messages(
            ServiceBusMessage(
                b"failed", application_properties={"status": "Failed", "location": "westus"}
            )
        )
        sender.send_messages(
            ServiceBusMessage(b"ok", application_properties={"status": "Succeeded"})
        )
    # then each subscription holds exactly the events its filter matches
    assert _copies(emulator) == {"all": 2, "failed": 1, "failed-westus": 1}
    # and a subscriber receives its copy through the SDK
    with subscription_receiver(client, "failed-westus") as receiver:
        (message,) = receive_exactly(receiver, 1)
        receiver.complete_message(message)
    assert str(message) == "failed"
    # and settling one subscription's copy leaves the others alone
    assert _copies(emulator) == {"all": 2, "failed": 1}


def test_all_filter_properties_must_match(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given a subscription filtering on status AND location
    with topic_sender(client) as sender:
        # when an event matches only one of them
        sender.send_messages(
            ServiceBusMessage(
                b"x", application_properties={"status": "Failed", "location": "eastus"}
            )
        )
    # then that subscription does not get it
    assert _copies(emulator) == {"all": 1, "failed": 1}


def test_filters_on_system_properties(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given subscriptions filtering on subject, correlation id, content type and message id
    with topic_sender(client) as sender:
        # when events carrying each of those are published
        sender.send_messages(
            [
                ServiceBusMessage(b"1", subject="OperationFailed"),
                ServiceBusMessage(b"2", correlation_id="op-42"),
                ServiceBusMessage(b"3", content_type="application/cloudevents+json"),
                ServiceBusMessage(b"4", message_id="evt-1"),
                ServiceBusMessage(b"5", subject="Other", correlation_id="op-43"),
            ]
        )
    # then each lands only where its system property matches
    assert _copies(emulator) == {
        "all": 5,
        "by-subject": 1,
        "by-correlation": 1,
        "by-content-type": 1,
        "by-message-id": 1,
    }
    texts = {
        name: [m.text for m in emulator.peek_all(f"{TOPIC}/subscriptions/{name}")]
        for name in ("by-subject", "by-correlation", "by-content-type", "by-message-id")
    }
    assert texts == {
        "by-subject": ["1"],
        "by-correlation": ["2"],
        "by-content-type": ["3"],
        "by-message-id": ["4"],
    }


def test_subscription_copies_share_the_topic_sequence_number(
    emulator: ServiceBusEmulator, client: ServiceBusClient
) -> None:
    # given two events on the topic
    with topic_sender(client) as sender:
        sender.send_messages(ServiceBusMessage(b"a", application_properties={"status": "Failed"}))
        sender.send_messages(ServiceBusMessage(b"b"))
    # when their copies are inspected, then numbers are the topic's, in order
    assert [m.sequence_number for m in emulator.peek_all("events/subscriptions/all")] == [1, 2]
    assert [m.sequence_number for m in emulator.peek_all("events/subscriptions/failed")] == [1]
    assert emulator.sent_count(TOPIC) == 2
    assert emulator.sent_count("events/subscriptions/failed") == 1
