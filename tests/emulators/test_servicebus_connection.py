"""Connecting the real SDK to the emulator: both auth paths, CBS, unknown entities, lifecycle."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusError,
)

from emulators.servicebus import QueueConfig, ServiceBusEmulator

from .conftest import QUEUE, StaticTokenCredential, queue_sender, receive_exactly


def test_connection_string_client_sends_and_receives(emulator: ServiceBusEmulator) -> None:
    # given a client built from the emulator's development connection string, with the
    # SDK's default sender and receiver settings
    with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
        # when it sends one message and receives it back
        with client.get_queue_sender(QUEUE) as sender:
            sender.send_messages(ServiceBusMessage(b"hello"))
        with client.get_queue_receiver(QUEUE) as receiver:
            (message,) = receive_exactly(receiver, 1)
            receiver.complete_message(message)

    # then the body round-trips and the SAS path put a token for the entity audience
    assert str(message) == "hello"
    assert emulator.active_count(QUEUE) == 0
    audiences = [audience for audience, _ in emulator.cbs_tokens]
    assert f"sb://{emulator.fully_qualified_namespace}/{QUEUE}" in audiences
    # and the sender and the receiver each opened their own connection, as the SDK does
    assert emulator.connections_opened == 2


def test_connection_string_has_the_documented_shape(emulator: ServiceBusEmulator) -> None:
    # given a started emulator, then its connection string is the emulator form the SDK knows
    assert emulator.connection_string == (
        f"Endpoint=sb://127.0.0.1:{emulator.port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )
    assert emulator.fully_qualified_namespace == f"127.0.0.1:{emulator.port}"


def test_token_credential_client_puts_its_token_over_cbs(emulator: ServiceBusEmulator) -> None:
    # given a client on the TokenCredential path (host:port namespace, no TLS)
    credential = StaticTokenCredential("token-from-credential")
    with (
        ServiceBusClient(emulator.fully_qualified_namespace, credential, use_tls=False) as client,
        client.get_queue_sender(QUEUE) as sender,
    ):
        # when it sends a message
        sender.send_messages(ServiceBusMessage(b"via credential"))

    # then the credential was asked for the Service Bus scope and its token reached CBS
    assert ("https://servicebus.azure.net//.default",) in credential.scopes
    assert (
        f"sb://{emulator.fully_qualified_namespace}/{QUEUE}",
        "token-from-credential",
    ) in emulator.cbs_tokens
    assert emulator.active_count(QUEUE) == 1


def test_rejected_put_token_surfaces_as_authentication_error(
    emulator: ServiceBusEmulator,
) -> None:
    # given an emulator that answers put-token with 401
    emulator.reject_cbs(True)
    with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        sender = client.get_queue_sender(QUEUE)
        # when a sender tries to send, then the SDK raises an authentication error
        with pytest.raises(ServiceBusAuthenticationError):
            sender.send_messages(ServiceBusMessage(b"denied"))
        sender.close()
    # and nothing was enqueued
    assert emulator.active_count(QUEUE) == 0

    # when tokens are accepted again, then the same kind of client works
    emulator.reject_cbs(False)
    with (
        ServiceBusClient.from_connection_string(emulator.connection_string) as client,
        queue_sender(client) as sender,
    ):
        sender.send_messages(ServiceBusMessage(b"allowed"))
    assert emulator.active_count(QUEUE) == 1


def test_unknown_entities_raise_entity_not_found(emulator: ServiceBusEmulator) -> None:
    # given a client, and a queue and a subscription the emulator does not have
    with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        sender = client.get_queue_sender("no-such-queue")
        receiver = client.get_subscription_receiver("events", "no-such-subscription")
        # when a sender or a receiver attaches, then the SDK says the entity does not exist
        with pytest.raises(MessagingEntityNotFoundError):
            sender.send_messages(ServiceBusMessage(b"x"))
        with pytest.raises(MessagingEntityNotFoundError):
            receiver.receive_messages(max_wait_time=1)
        sender.close()
        receiver.close()


def test_sending_to_a_subscription_is_refused(emulator: ServiceBusEmulator) -> None:
    # given a client, when it attaches a *sender* to a subscription path
    with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        sender = client.get_queue_sender("events/subscriptions/all")
        # then the broker refuses the link, as Service Bus does
        with pytest.raises(ServiceBusError):
            sender.send_messages(ServiceBusMessage(b"x"))
        sender.close()


def test_emulator_can_listen_on_a_fixed_port_and_stop_cleanly() -> None:
    # given an emulator on a port picked by a first emulator (then released)
    with ServiceBusEmulator(queues={"q": QueueConfig()}) as first:
        port = first.port
    assert not first.running

    # when a second emulator listens on exactly that port
    with ServiceBusEmulator(queues={"q": QueueConfig()}, port=port) as emu:
        with (
            ServiceBusClient.from_connection_string(emu.connection_string) as client,
            queue_sender(client, "q") as sender,
        ):
            sender.send_messages(ServiceBusMessage(b"x"))
        # then clients reach it there
        assert emu.port == port
        assert emu.active_count("q") == 1
    # and stopping joins the reactor thread
    assert not emu.running
