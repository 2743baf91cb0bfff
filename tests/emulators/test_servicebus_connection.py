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

from .conftest import QUEUE, StaticTokenCredential, receive_exactly


def test_connection_string_client_sends_and_receives(emulator: ServiceBusEmulator) -> None:
    # given a client built from the emulator's development connection string
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
    with ServiceBusClient(
        emulator.fully_qualified_namespace, credential, use_tls=False
    ) as client:
        # when it sends a message
        with client.get_queue_sender(QUEUE) as sender:
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
        # when a sender tries to send, then the SDK raises an authentication error
        with pytest.raises(ServiceBusAuthenticationError):
            client.get_queue_sender(QUEUE).send_messages(ServiceBusMessage(b"denied"))
    # and nothing was enqueued
    assert emulator.active_count(QUEUE) == 0

    # when tokens are accepted again, then the same kind of client works
    emulator.reject_cbs(False)
    with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
        client.get_queue_sender(QUEUE).send_messages(ServiceBusMessage(b"allowed"))
    assert emulator.active_count(QUEUE) == 1


@pytest.mark.parametrize("side", ["sender", "receiver"])
def test_unknown_entity_raises_entity_not_found(emulator: ServiceBusEmulator, side: str) -> None:
    # given a client and an entity the emulator does not have
    with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        # when a sender or receiver attaches to it, then the SDK says it does not exist
        with pytest.raises(MessagingEntityNotFoundError):
            if side == "sender":
                client.get_queue_sender("no-such-queue").send_messages(ServiceBusMessage(b"x"))
            else:
                with client.get_queue_receiver("no-such-queue") as receiver:
                    receiver.receive_messages(max_wait_time=1)


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


def test_each_sender_and_receiver_opens_its_own_connection(emulator: ServiceBusEmulator) -> None:
    # given one client, when it opens a sender and a receiver
    with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
        with client.get_queue_sender(QUEUE) as sender:
            sender.send_messages(ServiceBusMessage(b"one"))
        with client.get_queue_receiver(QUEUE) as receiver:
            receive_exactly(receiver, 1)
    # then the emulator counted two accepted connections (the SDK's documented behaviour)
    assert emulator.connections_opened == 2


def test_emulator_can_listen_on_a_fixed_port_and_stop_cleanly() -> None:
    # given an emulator on a port picked by a first emulator (then released)
    with ServiceBusEmulator(queues={"q": QueueConfig()}) as first:
        port = first.port
    assert not first.running

    # when a second emulator listens on exactly that port
    with ServiceBusEmulator(queues={"q": QueueConfig()}, port=port) as emu:
        with ServiceBusClient.from_connection_string(emu.connection_string) as client:
            client.get_queue_sender("q").send_messages(ServiceBusMessage(b"x"))
        # then clients reach it there
        assert emu.port == port
        assert emu.active_count("q") == 1
    # and stopping joins the reactor thread
    assert not emu.running
