"""A small, fixed-seed chaos run in CI: the invariants hold while every boundary misbehaves.

The full run (several hundred watches, several worker kills) is
``python -m benchmarks.chaos``; this one runs 35 watches with one SIGKILL of the real
``python -m ops_status worker`` subprocess, and asserts invariants, never timings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from benchmarks.chaos import EXPECTED_TYPE, MAX_DELIVERY_COUNT, run_chaos
from emulators.arm import Step
from tests.e2e.conftest import E2E, running_worker
from tests.secrets import CAPTURE, find_secrets


@pytest.mark.slow
@pytest.mark.timeout(240)
# The harness's own SDK client loses connections to drop_connections(); the SDK leaves
# their sockets to the garbage collector. (The run collects them itself before returning.)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_chaos_run_loses_nothing_duplicates_nothing_and_never_forks(tmp_path: Path) -> None:
    report = run_chaos(
        35, seed=3, kills=1, concurrency=8, time_limit=150, log_path=tmp_path / "worker.log"
    )

    assert report.violations == [], report.table()
    assert report.lost == []
    # exactly one terminal event per watch (or a dead-lettered watch with a reason)
    assert report.terminal_events + report.dead_lettered >= report.watches
    assert report.duplicates == 0
    assert report.duplicate_ids == 0
    assert report.forks == 0
    assert report.most_scheduled <= 1
    assert report.scheduled_after_terminal == []
    assert report.late_reads_max < MAX_DELIVERY_COUNT
    assert report.queue_left == 0
    # every fault kind was actually injected, and the worker was really killed
    assert report.faults["worker_sigkill"] == 1
    for kind in (
        "arm_429",
        "arm_500",
        "arm_reset",
        "arm_read_timeout",
        "arm_malformed",
        "arm_slow_handler",
        "arm_404_at_start",
    ):
        assert report.faults[kind] > 0, kind
    assert set(report.outcomes) == set(EXPECTED_TYPE)
    # the worker subprocess's whole log (INFO, SDK warnings, tracebacks) carries no secret
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "worker.started" in log
    assert find_secrets(log) == []


def test_a_whole_flow_logged_at_debug_everywhere_carries_no_secret(
    e2e: E2E, caplog: pytest.LogCaptureFixture
) -> None:
    # DEBUG for every logger (ours, azure-identity, msal, the AMQP stack, urllib3): tokens
    # travel in CBS frames and Authorization headers, and must not reach a log line.
    caplog.set_level(logging.DEBUG)
    before = CAPTURE.records_seen
    e2e.stack.arm.script("op-debug", [Step.running(), Step.succeeded()])
    e2e.submit(e2e.parts("op-debug"))

    with running_worker(e2e):
        [(event, _)] = e2e.receive_events("all", expect=1)

    assert event["type"] == "OpsStatus.Operation.Succeeded"
    assert CAPTURE.records_seen - before > 100  # the root handler really saw them
    assert any(r.name.startswith("azure") and r.levelno == logging.DEBUG for r in caplog.records)
    assert find_secrets(caplog.text) == []
    assert [f for f in CAPTURE.findings] == []
