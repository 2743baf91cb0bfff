"""The worker's back-off and outage reporting, with a fake clock (no sockets)."""

from __future__ import annotations

import logging

import pytest
from azure.servicebus.exceptions import ServiceBusConnectionError

from ops_status.worker import Backoff, WorkerStats, _Outage

REFUSED = ServiceBusConnectionError(message="Connection refused")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def events(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage().split(" ", 1)[0] for r in caplog.records if r.levelno >= level]


def test_backoff_doubles_from_the_first_failure_up_to_its_cap() -> None:
    backoff = Backoff(initial=1.0, cap=60.0)

    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(10_000) == 60


def test_many_receivers_failing_together_make_one_warning_naming_namespace_and_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = _Outage("sb.example:5671", Backoff(1.0, 60.0), clock=FakeClock())

    with caplog.at_level(logging.DEBUG, logger="ops_status.worker"):
        for n in range(16):
            outage.failed("intake" if n % 2 else "polls", REFUSED)

    assert events(caplog) == ["worker.waiting_for_service_bus"]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "namespace=sb.example:5671 queue=polls" in warning.getMessage()
    assert "error=ServiceBusConnectionError" in warning.getMessage()
    assert events(caplog, logging.DEBUG).count("worker.receiver_failed") == 15


def test_reminders_follow_the_backoff_and_name_every_failing_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    outage = _Outage("sb.example", Backoff(1.0, 4.0), clock=clock)

    # A failure every 0.5 s for 20 s, alternating between the two queues
    with caplog.at_level(logging.WARNING, logger="ops_status.worker"):
        for n in range(40):
            clock.now = n * 0.5
            outage.failed("intake" if n % 2 else "polls", REFUSED)

    # First at 0, then after 1, 2, 4, 4, 4, 4 s: at 1, 3, 7, 11, 15, 19
    assert events(caplog) == ["worker.waiting_for_service_bus"] + 6 * [
        "worker.still_waiting_for_service_bus"
    ]
    assert "queue=intake,polls" in caplog.records[-1].getMessage()
    assert "waited_s=19 failed_attempts=39" in caplog.records[-1].getMessage()


def test_recovery_is_said_once_per_queue_and_a_new_outage_is_news_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = _Outage("sb.example", Backoff(), clock=FakeClock())

    with caplog.at_level(logging.INFO, logger="ops_status.worker"):
        outage.failed("intake", REFUSED)
        outage.failed("polls", REFUSED)
        for _ in range(3):
            outage.recovered("intake")
            outage.recovered("polls")
        outage.failed("polls", REFUSED)

    assert events(caplog, logging.INFO) == [
        "worker.waiting_for_service_bus",
        "worker.service_bus_reachable",
        "worker.service_bus_reachable",
        "worker.waiting_for_service_bus",
    ]


def test_a_queue_is_unreadable_only_if_it_failed_and_was_never_read() -> None:
    stats = WorkerStats()

    stats.failed("intake")
    stats.failed("polls")
    stats.read("intake")

    assert stats.unreadable_queues == ["polls"]
    assert stats.receive_errors == 2
    assert WorkerStats().unreadable_queues == []
