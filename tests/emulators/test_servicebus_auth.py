"""Who may send where: SAS rules, token verification and claims, through the real SDK.

The namespace mirrors the product's trust boundary: pipelines hold a Send-only rule on
the ``intake`` queue; ``polls`` has no rule of its own, so only namespace-level
credentials (and the app's identity) reach it. Every refusal is checked twice: the
exception the SDK raises, and that the broker's state did not change.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus._common import mgmt_handlers
from azure.servicebus._common.constants import (
    REQUEST_RESPONSE_PEEK_OPERATION,
    REQUEST_RESPONSE_SCHEDULE_MESSAGE_OPERATION,
)

# The SDK's own signer (what ServiceBusSharedKeyCredential uses), not the emulator's code.
from azure.servicebus._pyamqp.utils import generate_sas_token
from azure.servicebus.exceptions import (
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
)

from emulators.servicebus import (
    AuthorizationRule,
    QueueConfig,
    ServiceBusEmulator,
    SubscriptionConfig,
    TopicConfig,
)

from .conftest import StaticTokenCredential, queue_receiver

INTAKE = "intake"
POLLS = "polls"
TOPIC = "events"
PIPELINE_KEY = "pipeline-key-0123456789"
SEND_ANYWHERE_KEY = "send-anywhere-key-abcdef"
SUBSCRIBER_KEY = "subscriber-key-zyxwvu"
#: Bearer tokens standing for Entra principals (RBAC role assignments per entity).
PIPELINE_PRINCIPAL = "jwt-pipeline-principal"  # Data Sender on intake only
APP_PRINCIPAL = "jwt-app-principal"  # Data Sender on polls, Data Receiver on both queues
NO_RETRY: dict[str, Any] = {"retry_total": 0}


@pytest.fixture
def emu() -> Iterator[ServiceBusEmulator]:
    with ServiceBusEmulator(
        queues={
            INTAKE: QueueConfig(
                authorization_rules=[AuthorizationRule("pipelines", PIPELINE_KEY, {"Send"})]
            ),
            POLLS: QueueConfig(),
        },
        topics={
            TOPIC: TopicConfig(
                subscriptions={"all": SubscriptionConfig()},
                authorization_rules=[AuthorizationRule("subscribers", SUBSCRIBER_KEY, {"Listen"})],
            )
        },
        authorization_rules=[AuthorizationRule("send-anywhere", SEND_ANYWHERE_KEY, {"Send"})],
        token_rights={
            PIPELINE_PRINCIPAL: {INTAKE: {"Send"}},
            APP_PRINCIPAL: {POLLS: {"Send", "Listen"}, INTAKE: {"Listen"}},
        },
    ) as emulator:
        yield emulator


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _nothing_arrived(emu: ServiceBusEmulator, queue: str) -> None:
    assert emu.sent_count(queue) == 0
    assert emu.active_count(queue) == 0
    assert emu.scheduled_count(queue) == 0


def test_entity_send_rule_sends_to_its_queue_only_and_cannot_receive(
    emu: ServiceBusEmulator,
) -> None:
    # given the connection string a pipeline copies for the intake queue's Send rule
    connection_string = emu.connection_string_for("pipelines", INTAKE)
    assert f";EntityPath={INTAKE};" in connection_string
    with ServiceBusClient.from_connection_string(connection_string, **NO_RETRY) as client:
        # when it sends and schedules to intake, then both are accepted
        with client.get_queue_sender(INTAKE, keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage(b"fresh watch"))
            sender.schedule_messages(ServiceBusMessage(b"later"), _later())
        assert (emu.active_count(INTAKE), emu.scheduled_count(INTAKE)) == (1, 1)

        # when it attaches a receiver to intake, then the link is refused (no Listen)
        receiver = queue_receiver(client, INTAKE)
        with pytest.raises(ServiceBusAuthorizationError, match="'Listen' claim"):
            receiver.receive_messages(max_wait_time=1)
        receiver.close()
    # and the message was neither locked nor removed
    assert (emu.active_count(INTAKE), emu.locked_count(INTAKE)) == (1, 0)

    # when the same key name and key sign for the polls queue (the SDK signs the polls
    # audience itself), then CBS refuses the token: the rule lives on intake only
    credential = AzureNamedKeyCredential("pipelines", PIPELINE_KEY)
    with ServiceBusClient(
        emu.fully_qualified_namespace, credential, use_tls=False, **NO_RETRY
    ) as client:
        sender = client.get_queue_sender(POLLS, keep_alive=None)
        with pytest.raises(ServiceBusAuthenticationError):
            sender.send_messages(ServiceBusMessage(b"forged poll state"))
        with pytest.raises(ServiceBusAuthenticationError):
            sender.schedule_messages(ServiceBusMessage(b"forged poll state"), _later())
        sender.close()

    # and nothing reached polls
    _nothing_arrived(emu, POLLS)
    assert emu.authorization_failures == [
        (INTAKE, "Listen claim"),
        (POLLS, "InvalidSignature"),
        (POLLS, "InvalidSignature"),
    ]


def test_namespace_send_rule_sends_everywhere_but_cannot_receive(
    emu: ServiceBusEmulator,
) -> None:
    # given a namespace-level Send-only rule
    with ServiceBusClient.from_connection_string(
        emu.connection_string_for("send-anywhere"), **NO_RETRY
    ) as client:
        # when it sends to a queue without rules of its own and to the topic, then both arrive
        with client.get_queue_sender(POLLS, keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage(b"poll"))
        with client.get_topic_sender(TOPIC, keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage(b"event"))
        assert emu.active_count(POLLS) == 1
        assert emu.active_count(f"{TOPIC}/subscriptions/all") == 1

        # when it attaches a receiver, then the link is refused (no Listen)
        receiver = queue_receiver(client, POLLS)
        with pytest.raises(ServiceBusAuthorizationError, match="'Listen' claim"):
            receiver.receive_messages(max_wait_time=1)
        receiver.close()
    assert (emu.active_count(POLLS), emu.locked_count(POLLS)) == (1, 0)


def test_topic_listen_rule_covers_its_subscriptions_but_cannot_send(
    emu: ServiceBusEmulator,
) -> None:
    # given the topic's Listen-only rule
    credential = AzureNamedKeyCredential("subscribers", SUBSCRIBER_KEY)
    with ServiceBusClient(
        emu.fully_qualified_namespace, credential, use_tls=False, **NO_RETRY
    ) as client:
        # when it receives from a subscription (below the topic), then the link is
        # accepted (a refused link raises instead of returning nothing)
        with client.get_subscription_receiver(
            TOPIC, "all", prefetch_count=1, keep_alive=None, socket_timeout=0.05
        ) as receiver:
            assert receiver.receive_messages(max_wait_time=0.1) == []
        # and when it sends to the topic, then the link is refused (no Send)
        sender = client.get_topic_sender(TOPIC, keep_alive=None)
        with pytest.raises(ServiceBusAuthorizationError, match="'Send' claim"):
            sender.send_messages(ServiceBusMessage(b"not yours"))
        sender.close()
    assert emu.sent_count(TOPIC) == 0
    assert emu.authorization_failures == [(TOPIC, "Send claim")]


def _sas(emu: ServiceBusEmulator, resource: str, key_name: str, key: str, expiry: int) -> str:
    return generate_sas_token(
        f"sb://{emu.fully_qualified_namespace}/{resource}", key_name, key, expiry
    )


def _tampered(token: str) -> str:
    head, sig, tail = token.partition("sig=")
    flipped = ("B" if tail[0] == "A" else "A") + tail[1:]
    return head + sig + flipped


def _send_with(emu: ServiceBusEmulator, token: str) -> type[BaseException] | None:
    """Send one message to polls with a fixed SAS token; the exception type, or None."""
    credential = AzureSasCredential(token)
    with ServiceBusClient(
        emu.fully_qualified_namespace, credential, use_tls=False, **NO_RETRY
    ) as client:
        sender = client.get_queue_sender(POLLS, keep_alive=None)
        try:
            sender.send_messages(ServiceBusMessage(b"x"))
        except Exception as exc:  # noqa: BLE001 - the type is the result
            return type(exc)
        finally:
            sender.close()
    return None


def test_tampered_expired_and_unknown_key_tokens_are_refused_by_cbs(
    emu: ServiceBusEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="emulators.servicebus")
    expiry = int(time.time()) + 3600
    # given a valid token signed by the SDK's own signer: it sends to polls (the control)
    good = _sas(emu, POLLS, "send-anywhere", SEND_ANYWHERE_KEY, expiry)
    assert _send_with(emu, good) is None
    assert emu.sent_count(POLLS) == 1

    # when tokens that differ from it in one respect each are used the same way
    bad = {
        "tampered": _tampered(good),
        "expired": _sas(emu, POLLS, "send-anywhere", SEND_ANYWHERE_KEY, expiry - 7200),
        "unknown key name": _sas(emu, POLLS, "no-such-rule", SEND_ANYWHERE_KEY, expiry),
    }
    # (each client opens its own connection: in parallel, as the checks are independent)
    with ThreadPoolExecutor(len(bad)) as pool:
        outcomes = dict(zip(bad, pool.map(lambda t: _send_with(emu, t), bad.values()), strict=True))

    # then CBS answers 401 and the SDK raises an authentication error for each
    assert outcomes == dict.fromkeys(bad, ServiceBusAuthenticationError)
    # for the expected reasons, with nothing enqueued
    assert Counter(emu.authorization_failures) == Counter(
        {(POLLS, "InvalidSignature"): 2, (POLLS, "ExpiredToken"): 1}
    )
    assert emu.sent_count(POLLS) == 1
    # and neither the tokens nor their signatures appear in the emulator's logs
    assert "refused: ExpiredToken" in caplog.text  # the log check below is not vacuous
    for token in (good, *bad.values()):
        assert token not in caplog.text
        assert token.split("sig=")[1].split("&")[0] not in caplog.text


def test_identity_rights_refuse_a_principal_outside_its_role(emu: ServiceBusEmulator) -> None:
    # given a principal with Data Sender on intake only
    credential = StaticTokenCredential(PIPELINE_PRINCIPAL)
    with ServiceBusClient(
        emu.fully_qualified_namespace, credential, use_tls=False, **NO_RETRY
    ) as client:
        # when it sends to intake, then it may
        with client.get_queue_sender(INTAKE, keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage(b"fresh watch"))
        # when it sends or schedules to polls, then the token is accepted by CBS but
        # the link is refused for lack of the Send claim, as with an RBAC role missing
        sender = client.get_queue_sender(POLLS, keep_alive=None)
        with pytest.raises(ServiceBusAuthorizationError, match="'Send' claim"):
            sender.send_messages(ServiceBusMessage(b"forged poll state"))
        with pytest.raises(ServiceBusAuthorizationError, match="'Send' claim"):
            sender.schedule_messages(ServiceBusMessage(b"forged poll state"), _later())
        sender.close()
    assert emu.active_count(INTAKE) == 1
    _nothing_arrived(emu, POLLS)
    assert emu.authorization_failures == [(POLLS, "Send claim")] * 2


def test_management_operations_need_their_claim(emu: ServiceBusEmulator) -> None:
    # The SDK attaches the entity link before any management request, so its public API
    # never reaches the management check with a missing claim; the handlers' own request
    # method (the one peek_messages and schedule_messages use) does.
    credential = StaticTokenCredential(APP_PRINCIPAL)  # Listen on intake, no Send
    with (
        ServiceBusClient(
            emu.fully_qualified_namespace, credential, use_tls=False, **NO_RETRY
        ) as client,
        queue_receiver(client, INTAKE) as receiver,
    ):
        # given a receiver whose token has Listen: peeking works (the control)
        assert receiver.peek_messages() == []
        # when it asks intake's management node to schedule, then 401 unauthorized
        with pytest.raises(ServiceBusAuthorizationError, match="'Send' claim"):
            receiver._mgmt_request_response(
                REQUEST_RESPONSE_SCHEDULE_MESSAGE_OPERATION,
                {"messages": []},
                mgmt_handlers.default,
            )
    pipeline = StaticTokenCredential(PIPELINE_PRINCIPAL)  # Send on intake, no Listen
    with (
        ServiceBusClient(
            emu.fully_qualified_namespace, pipeline, use_tls=False, **NO_RETRY
        ) as client,
        client.get_queue_sender(INTAKE, keep_alive=None) as sender,
    ):
        # given a sender whose token has Send: scheduling works (the control)
        (number,) = sender.schedule_messages(ServiceBusMessage(b"later"), _later())
        # when it peeks through the same management node, then 401 unauthorized
        with pytest.raises(ServiceBusAuthorizationError, match="'Listen' claim"):
            sender._mgmt_request_response(
                REQUEST_RESPONSE_PEEK_OPERATION,
                {"from-sequence-number": number, "message-count": 1},
                mgmt_handlers.default,
            )
    assert emu.scheduled_count(INTAKE) == 1
    assert emu.authorization_failures == [(INTAKE, "Send claim"), (INTAKE, "Listen claim")]
