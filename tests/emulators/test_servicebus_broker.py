"""The emulator's broker rules and configuration, without sockets (fast, exhaustive).

The SDK-level tests prove the wire; these pin the state machine's edges: windows,
counts, filters, expiry, addressing and config parsing.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from proton import Message, symbol, timestamp

from emulators.servicebus import (
    ConfigError,
    EmulatorConfig,
    MessageState,
    QueueConfig,
    SubscriptionConfig,
    TopicConfig,
    load_config,
)
from emulators.servicebus.broker import (
    Broker,
    Clock,
    EntityNotFoundError,
    MessageLockLostError,
    MessageNotFoundError,
    NotAllowedError,
    SendRefusedError,
)
from emulators.servicebus.codec import encode_for_delivery, parse_message, split_batch
from emulators.servicebus.config import parse_subscription_flag

NOW = 1_800_000_000.0


class FakeWall:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _message(
    body: bytes = b"x",
    *,
    message_id: str | None = None,
    properties: dict[str, Any] | None = None,
    ttl: float | None = None,
    scheduled_at: float | None = None,
    **system: Any,
) -> Any:
    # inferred=True: bytes become a data section, as the SDK sends them
    message = Message(
        body=body, id=message_id, properties=properties or {}, inferred=True, **system
    )
    if ttl is not None:
        message.ttl = ttl
    if scheduled_at is not None:
        message.annotations = {
            symbol("x-opt-scheduled-enqueue-time"): timestamp(int(scheduled_at * 1000))
        }
    return parse_message(bytes(message.encode()))


@pytest.fixture
def wall() -> FakeWall:
    return FakeWall()


def _broker(wall: FakeWall, **queue: Any) -> Broker:
    config = EmulatorConfig(
        queues={"q": QueueConfig(**queue)},
        topics={
            "t": TopicConfig(
                duplicate_detection_window=60.0,
                subscriptions={
                    "all": SubscriptionConfig(),
                    "typed": SubscriptionConfig(filter={"n": 3, "flag": True}),
                    "sys": SubscriptionConfig(filter={"sys.label": "L", "sys.to": "dest"}),
                },
            )
        },
    )
    return Broker(config, clock=Clock(wall), monotonic=wall)


def test_duplicate_window_is_measured_from_the_first_acceptance(wall: FakeWall) -> None:
    # given a 60 s window and a message accepted at t0
    broker = _broker(wall, duplicate_detection_window=60.0)
    broker.send("q", [_message(message_id="a")])
    # when duplicates keep arriving inside the window, then they never extend it
    wall.now += 50
    broker.send("q", [_message(message_id="a")])
    wall.now += 11  # 61 s after the first
    broker.send("q", [_message(message_id="a")])
    assert broker.duplicates_dropped("q") == 1
    assert broker.active_count("q") == 2


def test_each_message_of_a_batch_is_deduplicated_on_its_own(wall: FakeWall) -> None:
    broker = _broker(wall, duplicate_detection_window=60.0)
    numbers = broker.send("q", [_message(message_id="a"), _message(message_id="a")])
    # then both got sequence numbers but one was dropped
    assert numbers == [1, 2]
    assert (broker.active_count("q"), broker.duplicates_dropped("q")) == (1, 1)


def test_lock_expiry_counts_a_delivery_and_dead_letters_at_the_maximum(wall: FakeWall) -> None:
    broker = _broker(wall, lock_duration=10.0, max_delivery_count=2)
    broker.send("q", [_message()])
    first = broker.receive("q", peek_lock=True)
    assert first is not None
    # when the lock runs out, the message is available again, counted once
    wall.now += 10
    broker.tick()
    second = broker.receive("q", peek_lock=True)
    assert second is not None
    assert second.delivery_count == 1
    assert second.lock_token != first.lock_token
    # when the second lock runs out too, it has reached MaxDeliveryCount
    wall.now += 10
    broker.tick()
    assert broker.receive("q", peek_lock=True) is None
    (dead,) = broker.dead_letters("q")
    assert (dead.dead_letter_reason, dead.delivery_count) == ("MaxDeliveryCountExceeded", 2)


def test_settling_with_an_expired_lock_raises_lock_lost(wall: FakeWall) -> None:
    broker = _broker(wall, lock_duration=10.0)
    broker.send("q", [_message()])
    delivered = broker.receive("q", peek_lock=True)
    assert delivered is not None
    assert delivered.lock_token is not None
    wall.now += 10.5
    # when the consumer completes after expiry (before any tick), then the lock is lost
    with pytest.raises(MessageLockLostError):
        broker.complete(delivered.lock_token)
    # and the message went back, counted
    again = broker.receive("q", peek_lock=True)
    assert again is not None
    assert again.delivery_count == 1


def test_release_unlocks_without_counting_and_ignores_lost_locks(wall: FakeWall) -> None:
    broker = _broker(wall)
    broker.send("q", [_message()])
    delivered = broker.receive("q", peek_lock=True)
    assert delivered is not None
    assert delivered.lock_token is not None
    broker.release(delivered.lock_token)
    broker.release(delivered.lock_token)  # second time: nothing to release, no error
    again = broker.receive("q", peek_lock=True)
    assert again is not None
    assert again.delivery_count == 0


def test_unknown_lock_token_is_lock_lost(wall: FakeWall) -> None:
    broker = _broker(wall)
    with pytest.raises(MessageLockLostError):
        broker.abandon(uuid.uuid4())


def test_abandoning_a_deferred_message_keeps_it_deferred(wall: FakeWall) -> None:
    broker = _broker(wall)
    broker.send("q", [_message()])
    delivered = broker.receive("q", peek_lock=True)
    assert delivered is not None
    assert delivered.lock_token is not None
    broker.defer(delivered.lock_token)
    (fetched,) = broker.receive_deferred("q", [delivered.sequence_number], peek_lock=True)
    assert fetched.state is MessageState.DEFERRED
    assert fetched.lock_token is not None
    broker.abandon(fetched.lock_token)
    # then it is still only reachable by sequence number
    assert broker.receive("q", peek_lock=True) is None
    assert broker.deferred_count("q") == 1
    with pytest.raises(MessageNotFoundError):
        broker.receive_deferred("q", [999], peek_lock=True)


def test_time_to_live_expires_messages_optionally_into_the_dead_letter_queue(
    wall: FakeWall,
) -> None:
    dropping = _broker(wall)
    keeping = _broker(wall, dead_lettering_on_message_expiration=True)
    for broker in (dropping, keeping):
        broker.send("q", [_message(b"short", ttl=5.0), _message(b"long", ttl=100.0)])
    wall.now += 6
    for broker in (dropping, keeping):
        broker.tick()
        assert [m.text for m in broker.peek_all("q")] == ["long"]
    assert dropping.dead_letter_count("q") == 0
    assert keeping.dead_letters("q")[0].dead_letter_reason == "TTLExpiredException"


def test_entity_default_time_to_live_applies_without_a_header_ttl(wall: FakeWall) -> None:
    broker = _broker(wall, default_message_time_to_live=30.0)
    broker.send("q", [_message()])
    wall.now += 31
    assert broker.receive("q", peek_lock=True) is None


def test_scheduled_message_uses_its_schedule_as_enqueued_time(wall: FakeWall) -> None:
    broker = _broker(wall)
    (number,) = broker.send("q", [_message(scheduled_at=NOW + 100)])
    assert broker.scheduled_count("q") == 1
    wall.now += 150
    assert broker.tick() is True
    delivered = broker.receive("q", peek_lock=True)
    assert delivered is not None
    assert (delivered.sequence_number, delivered.enqueued_time) == (number, NOW + 100)
    with pytest.raises(MessageNotFoundError):
        broker.cancel_scheduled("q", [number])  # already enqueued: nothing to cancel


def test_filters_compare_typed_values_and_system_properties(wall: FakeWall) -> None:
    broker = _broker(wall)
    broker.send(
        "t",
        [
            _message(b"typed", properties={"n": 3, "flag": True}),
            _message(b"string three", properties={"n": "3", "flag": True}),
            _message(b"int flag", properties={"n": 3, "flag": 1}),
            _message(b"sys", subject="L", address="dest"),
        ],
    )
    assert [m.text for m in broker.peek_all("t/subscriptions/typed")] == ["typed"]
    assert [m.text for m in broker.peek_all("t/subscriptions/sys")] == ["sys"]
    assert broker.active_count("t/subscriptions/all") == 4


def test_addresses_are_case_insensitive_and_accept_amqp_urls(wall: FakeWall) -> None:
    broker = _broker(wall)
    assert broker.check_sendable("amqps://127.0.0.1:5672/Q") == "q"
    assert broker.check_receivable("T/Subscriptions/ALL") == "t/subscriptions/all"
    assert broker.check_receivable("q/$DeadLetterQueue") == "q/$DeadLetterQueue"
    assert broker.check_management("t/Subscriptions/all/$management") == "t/Subscriptions/all"
    with pytest.raises(EntityNotFoundError):
        broker.check_sendable("nope")
    with pytest.raises(NotAllowedError):
        broker.check_sendable("t/subscriptions/all")
    with pytest.raises(NotAllowedError):
        broker.check_receivable("t")


def test_refusals_by_count_and_by_time(wall: FakeWall) -> None:
    broker = _broker(wall)
    broker.refuse_sends("q", count=2)
    for _ in range(2):
        with pytest.raises(SendRefusedError):
            broker.send("q", [_message()])
    broker.send("q", [_message()])
    broker.refuse_sends("q", for_seconds=5)
    with pytest.raises(SendRefusedError):
        broker.send("q", [_message()])
    wall.now += 6  # the fake wall doubles as the broker's monotonic clock here
    broker.send("q", [_message()])
    assert (broker.refused_count("q"), broker.active_count("q")) == (3, 2)
    with pytest.raises(ValueError, match="count"):
        broker.refuse_sends("q")


def test_topic_inspection_explains_itself(wall: FakeWall) -> None:
    broker = _broker(wall)
    with pytest.raises(ValueError, match="subscription"):
        broker.active_count("t")


def test_encoding_for_delivery_keeps_sender_sections_and_sets_delivery_count() -> None:
    # given a message with properties, application properties and annotations
    original = Message(body=b"payload", id="m1", properties={"k": "v"}, subject="s", inferred=True)
    original.annotations = {symbol("x-custom"): "kept"}
    parsed = parse_message(bytes(original.encode()))
    # when the broker re-encodes it for a delivery
    out = parse_message(
        encode_for_delivery(
            parsed,
            delivery_count=0,
            annotations={"x-opt-sequence-number": 7},
            extra_application_properties={"DeadLetterReason": "r"},
        )
    )
    # then the header carries an explicit delivery count, annotations are merged,
    # and the other sections are unchanged
    assert out.header is not None
    assert out.header.delivery_count == 0
    assert out.annotation("x-custom") == "kept"
    assert out.annotation("x-opt-sequence-number") == 7
    assert out.application_properties == {"k": "v", "DeadLetterReason": "r"}
    assert (out.properties.message_id, out.properties.subject) == ("m1", "s")
    assert out.body_bytes == b"payload"


def test_batch_shape_is_recognised_and_plain_messages_are_not() -> None:
    # given a batch envelope (properties + one data section per encoded message)
    inner = [
        bytes(Message(body=f"m{i}".encode(), id=f"{i}", inferred=True).encode()) for i in range(2)
    ]
    batch = parse_message(_properties_only("0") + b"".join(_data_section(p) for p in inner))
    # when it is unpacked, then each inner message comes out whole
    unpacked = split_batch(batch)
    assert unpacked is not None
    assert [(m.properties.message_id, m.body_bytes) for m in unpacked] == [
        ("0", b"m0"),
        ("1", b"m1"),
    ]
    # and an ordinary message is not mistaken for a batch
    assert split_batch(parse_message(bytes(Message(body=b"just bytes").encode()))) is None


def _data_section(payload: bytes) -> bytes:
    from proton import Data

    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(0x75)
    data.put_binary(payload)
    data.exit()
    return bytes(data.encode())


def _properties_only(message_id: str) -> bytes:
    from proton import Data

    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(0x73)
    data.put_list()
    data.enter()
    data.put_string(message_id)
    data.exit()
    data.exit()
    return bytes(data.encode())


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    raw = {
        "queues": {"watches": {"max_delivery_count": 5, "duplicate_detection_window": 600}},
        "topics": {
            "events": {
                "subscriptions": {"all": {}, "failed": {"filter": {"status": "Failed"}}},
            }
        },
    }
    path = tmp_path / "entities.json"
    path.write_text(json.dumps(raw))
    config = load_config(path)
    assert config.queues["watches"].max_delivery_count == 5
    assert config.topics["events"].subscriptions["failed"].filter == {"status": "Failed"}
    assert EmulatorConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ({"queue": {}}, "unknown key"),
        ({"queues": {"q": {"lock_duration": 301}}}, "lock_duration"),
        ({"queues": {"q": {"max_delivery_count": 0}}}, "max_delivery_count"),
        ({"queues": {"q": {"locktime": 1}}}, "unknown key"),
        ({"topics": {"t": {"subscriptions": {"s": {"filter": {"sys.nope": 1}}}}}}, "sys.nope"),
        ({"queues": {"x": {}}, "topics": {"X": {}}}, "twice"),
        ({"queues": {"a/b": {}}}, "invalid queue name"),
    ],
)
def test_config_errors_are_explicit(raw: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        EmulatorConfig.from_dict(raw)


def test_subscription_flag_parses_typed_filters() -> None:
    topic, name, sub = parse_subscription_flag("events/failed:status=Failed,n=3,ok=true")
    assert (topic, name) == ("events", "failed")
    assert sub.filter == {"status": "Failed", "n": 3, "ok": True}
    assert parse_subscription_flag("events/all")[2].filter is None
    with pytest.raises(ConfigError):
        parse_subscription_flag("no-slash")


def test_shipped_entities_file_loads() -> None:
    # The product's entities, derived from the template (tests/infra/test_topology.py).
    shipped = Path(__file__).parents[2] / "emulators" / "servicebus" / "entities.json"
    config = load_config(shipped)
    assert "ops-status-intake" in config.queues
    assert "ops-status-events" in config.topics
