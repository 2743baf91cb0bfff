"""The benchmarks' core functions, run with tiny numbers: they finish and their counts add up.

Structural facts only (what was sent, how many tokens and connections): speed is measured
by the benchmarks themselves (docs/performance.md), never asserted in tests.
"""

from __future__ import annotations

import cProfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from benchmarks.chaos import CountingOutputs, SeamCounts
from benchmarks.cold_start import IoCounters, parse_importtime, run_cold_start
from benchmarks.cold_start import format_report as format_cold_start
from benchmarks.cpu_per_watch import Meter, group_profile
from benchmarks.cpu_scaling import format_report as format_cpu_scaling
from benchmarks.cpu_scaling import run_benchmark as run_cpu_scaling
from benchmarks.fuzz import MAX_JSON_DEPTH, ClassReport, run_amqp_class, run_classes
from benchmarks.handler_cost import (
    SERVICEBUS_RESOURCE,
    VariantResult,
    format_report,
    kind_of,
    run_benchmark,
    targets,
)
from ops_status.errors import ServiceBusSendError
from ops_status.events import OutboundMessage
from ops_status.jsontext import json_object
from ops_status.request import MAX_JSON_DEPTH as PARSER_MAX_JSON_DEPTH
from tests.fakes import RecordingOutputs
from tests.secrets import find_secrets

# More handlers than requests' default pool of 10 keeps, with ARM reads that overlap
# (200 ms each) over two rounds: a pool of 10 would open 2 throw-away connections a round.
CONCURRENCY = 12
ARM_LATENCY = 0.2


def expected(result: VariantResult) -> Counter[str]:
    return Counter(
        "rescheduled" if kind_of(i) == "running" else "finished" for i in range(result.messages)
    )


@pytest.mark.slow
def test_handler_cost_runs_every_variant_and_its_counts_add_up() -> None:
    report = run_benchmark(
        messages=24, naive_messages=4, concurrency=CONCURRENCY, arm_latency=ARM_LATENCY
    )

    handler, worker, naive = report.results
    assert [r.messages for r in report.results] == [24, 24, 4]
    for result in report.results:
        assert result.errors == 0, result.first_error
        assert result.first_error is None
        assert result.arm_requests == result.messages
        # Running operations were rescheduled on the queue, finished ones published.
        assert result.queue_sent == expected(result)["rescheduled"]
        assert result.topic_sent == expected(result)["finished"]
        assert result.rss_peak_kib >= result.rss_end_kib > 0
    assert worker.actions["completed"] == worker.messages

    for ours in (handler, worker):
        # One token per scope for the whole run, whatever the concurrency.
        assert ours.token_requests.pop(SERVICEBUS_RESOURCE) == 1
        assert list(ours.token_requests.values()) == [1]  # the ARM scope
        # Kept connections, bounded by the concurrency; none opened only to be discarded.
        assert 1 <= ours.arm_connections <= CONCURRENCY
        assert "urllib3.connectionpool" not in ours.warnings
    assert handler.amqp_connections == 2  # one sender per entity
    assert worker.amqp_connections <= CONCURRENCY + 2  # receivers + the two senders

    # The naive variant pays everything per message: that is what it is there to show.
    assert naive.token_requests.pop(SERVICEBUS_RESOURCE) == naive.messages
    assert list(naive.token_requests.values()) == [naive.messages]
    assert naive.arm_connections == naive.messages
    assert naive.amqp_connections == naive.messages

    text = format_report(report)
    assert all(r.name in text for r in report.results)
    assert {name for name, _, _ in targets(report)} >= {"handler >= 10x naive (msg/s)"}


def test_cpu_profile_groups_charge_the_standard_library_to_the_package_that_called_it() -> None:
    # given a CPU profile of product code whose work is mostly json (standard library)
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    for n in range(3000):
        json_object(b'{"operationId": "op-%d", "context": {"a": [1, 2, 3]}}' % n)
    profile.disable()

    # then the time is the product's, with nothing left in a standard-library bucket
    groups = dict(group_profile([profile]))
    assert groups["ops_status (product code)"] > 0
    assert sum(groups.values()) == pytest.approx(groups["ops_status (product code)"], rel=0.05)


def test_cpu_meter_counts_only_the_messages_after_the_warm_up() -> None:
    meter = Meter(warm_up=2, measured=3)
    for _ in range(5):
        meter.completed()

    sample = meter.sample("floor")
    assert meter.finished.is_set()
    assert sample.messages == 3
    assert sample.cpu_s >= 0


def test_cold_start_imports_without_io_and_handles_a_first_message() -> None:
    report = run_cold_start(repeat=1, first_message_repeat=1, quick=True)

    [ours] = report.ours
    assert ours.total_us > 0
    assert "function_app" in ours.modules
    # azure.identity (msal, cryptography) waits for the first message.
    assert report.sdk_modules["azure.identity"] is False
    assert report.sdk_modules["azure.servicebus"] is True
    assert report.import_io.zero, report.import_io
    [run] = report.first_message
    assert 0 < run["started"] < run["imported"] <= run["built"] < run["first"]
    # Two messages in one process: a token per scope, one kept ARM connection, one sender.
    assert report.first_message_io == IoCounters(
        token_requests=2, arm_requests=2, arm_connections=1, amqp_connections=1
    )
    assert "First message" in format_cold_start(report)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_cpu_scaling_handles_every_message_with_each_process_count_and_reports_each() -> None:
    # The real CLI worker on the emulator: two start-ups dominate, so few messages will do.
    runs, load_before, load_after = run_cpu_scaling(
        processes=(1, 2), rounds=1, messages=24, concurrency=4
    )

    assert sorted(r.processes for r in runs) == [1, 2]
    for run in runs:
        # One handled-message line per message fed (a redelivery would log one more).
        assert run.messages >= 24, run
        assert run.span_s > 0, run  # first and last handled lines were apart: a rate exists
        assert run.rate > 0, run
        # The worker processes and the peers did work, and it was counted.
        assert run.cpu_s > 0, run
        assert run.stack_cpu_s > 0, run
        assert run.cpu_ms_per_message > 0, run
    assert len(load_before) == len(load_after) == 3

    rows = format_cpu_scaling(runs, load_before, load_after).splitlines()
    assert [row.split()[:2] for row in rows[1:3]] == [["1", "1"], ["2", "1"]]
    assert "nproc" in rows[-1]


def test_importtime_lines_are_parsed_with_their_depth() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |     ops_status.clock\n"
        "import time:       300 |        420 |   ops_status\n"
        "import time:        80 |        500 | function_app\n"
    )

    assert parse_importtime(stderr) == [
        (120, 120, 2, "ops_status.clock"),
        (300, 420, 1, "ops_status"),
        (80, 500, 0, "function_app"),
    ]


# -- chaos: what the product tried, counted at the Outputs seam ------------------------


def test_counting_outputs_record_every_send_tried_including_repeats_and_failures(
    tmp_path: Path,
) -> None:
    inner = RecordingOutputs()
    path = tmp_path / "sends"
    outputs = CountingOutputs(inner, path)
    poll = OutboundMessage(b"{}", "w.1", "application/json")
    event = OutboundMessage(b"{}", "w.final", "application/cloudevents+json")
    when = datetime(2026, 11, 28, tzinfo=timezone.utc)

    outputs.schedule_poll(poll, when)
    outputs.schedule_poll(poll, when)  # a step that ran twice sends twice
    inner.fail_next = 1
    with pytest.raises(ServiceBusSendError):
        outputs.send_event(event)
    outputs.send_event(event)
    outputs.close()

    seam = SeamCounts.read(path)
    assert seam.tried == Counter(polls=2, topic=2)
    assert seam.ok == Counter(polls=2, topic=1)
    assert seam.failed == Counter(topic=1)
    assert (seam.distinct("polls"), seam.distinct("topic")) == (1, 1)
    assert [m.message_id for m, _ in inner.scheduled] == ["w.1", "w.1"]


# -- fuzz: the input classes, small ---------------------------------------------------


@pytest.fixture(scope="module")
def quick_fuzz() -> ClassReport:
    return run_classes(["depth", "timestamps", "whitespace", "unicode-digits"], quick=True)


def test_fuzz_classes_count_every_input_and_check_every_outcome(quick_fuzz: ClassReport) -> None:
    assert MAX_JSON_DEPTH == PARSER_MAX_JSON_DEPTH  # the fuzz checks the parser's own limit
    for name, tally in quick_fuzz.tallies.items():
        assert tally.generated == tally.rejected + tally.accepted + tally.escaped, name
        assert tally.rejected > 0, name
        assert tally.violations == 0, (name, tally.violation_examples)
    for name in ("depth", "timestamps", "whitespace"):
        assert quick_fuzz.tallies[name].accepted > 0, name
    # A digit outside ASCII is no digit anywhere a number or time is parsed: all refused.
    assert quick_fuzz.tallies["unicode-digits"].accepted == 0
    for name in ("depth", "whitespace", "unicode-digits"):
        assert quick_fuzz.tallies[name].escaped == 0, quick_fuzz.tallies[name].escapes
    depth = quick_fuzz.tallies["depth"]
    # accepted exactly up to the limit, in every shape that may be accepted at all
    assert depth.accepted_by_label["context objects"] == MAX_JSON_DEPTH
    assert depth.accepted_by_label["context arrays"] == MAX_JSON_DEPTH - 2
    assert depth.accepted_by_label["pollState"] == MAX_JSON_DEPTH - 2
    assert depth.accepted_by_label["root array"] == 0


def test_fuzz_timestamp_extremes_escape_nothing(quick_fuzz: ClassReport) -> None:
    assert quick_fuzz.tallies["timestamps"].escaped == 0, quick_fuzz.tallies["timestamps"].escapes


@pytest.mark.timeout(60)
def test_fuzz_non_data_amqp_bodies_through_the_sdk_and_the_worker_end_as_rejections(
    tmp_path: Path,
) -> None:
    run = run_amqp_class(0, log_path=tmp_path / "worker.log")

    tally = run.tally
    assert tally.generated == 33  # 22 bodies on the intake queue, 11 on the polls queue
    assert tally.rejected == tally.generated
    assert (tally.accepted, tally.escaped, tally.violations) == (0, 0, 0), tally
    assert run.completed
    assert run.dead_lettered == 0
    assert run.abandoned == 0
    assert find_secrets((tmp_path / "worker.log").read_text(errors="replace")) == []
