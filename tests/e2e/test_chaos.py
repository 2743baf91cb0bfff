"""A small, fixed-seed chaos run in CI: the invariants hold while every boundary misbehaves.

The full run (several hundred watches, several worker kills) is
``python -m benchmarks.chaos``; this one runs 35 watches with one SIGKILL of the real
worker subprocess (``python -m ops_status worker``'s code path, its output client counted),
and asserts invariants, never timings. The window run kills a worker between send and
complete on purpose and shows what duplicate detection hides, and when it stops hiding it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from benchmarks.chaos import (
    DEPLOYED_WINDOW,
    EXPECTED_TYPE,
    MAX_DELIVERY_COUNT,
    run_chaos,
    run_windows,
)
from emulators.arm import Step
from ops_status.logs import SDK_LOGGERS
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
        35,
        seed=3,
        kills=1,
        long_refusals=1,
        concurrency=8,
        time_limit=150,
        log_path=tmp_path / "worker.log",
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
    # What the product tried, beside what the broker kept: every MessageId kept at most
    # once, and the topic kept exactly the events the harness received (one per watch).
    assert set(report.sends) == {"polls", "topic"}
    for entity, sends in report.sends.items():
        assert sends.kept_twice == 0, entity
        assert sends.kept <= sends.distinct_ids <= sends.tried, (entity, sends)
        assert sends.kept <= sends.received, (entity, sends)
        # a send is "ok" or "failed" unless a SIGKILL cut it (at most one per handler)
        assert 0 <= sends.tried - sends.ok - sends.failed <= 8, (entity, sends)
    assert report.sends["topic"].kept == report.terminal_events
    assert report.sends["polls"].tried > 0
    assert max(report.events_per_watch) <= 1
    assert report.events_per_watch[0] <= report.dead_lettered
    # every fault kind was actually injected, and the worker was really killed
    assert report.faults["worker_sigkill"] == 1
    assert report.faults["sb_refuse_polls_long"] == 1  # longer than the SDK's retries
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


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_kill_between_send_and_complete_is_hidden_by_the_template_window_not_a_short_one(
    tmp_path: Path,
) -> None:
    # A worker sends each step's follow-up (a terminal event; a scheduled poll) and dies
    # before completing; the real worker takes the redeliveries one lock period (2 s)
    # later. The template's window (1 h) drops every repeat; a 0.5 s one keeps them.
    deployed, short = run_windows((DEPLOYED_WINDOW, 0.5), lock_duration=2.0, log_dir=tmp_path)

    for run in (deployed, short):
        assert run.crash_exit == 137  # it really died between send and complete
        assert run.redelivered_steps == len(run.kinds) == 2
        assert run.dead_lettered == 0
        assert run.left == 0
        # the product sent every repeat: the seam sees more sends than MessageIds
        for entity in ("polls", "topic"):
            assert run.sends[entity].tried > run.sends[entity].distinct_ids, (entity, run.sends)

    assert deployed.problems(expect_hazard=False) == []
    assert deployed.duplicate_events == 0
    assert deployed.forked_watches == 0
    assert set(deployed.events_per_watch.values()) == {1}
    for entity in ("polls", "topic"):
        sends = deployed.sends[entity]
        assert sends.dropped >= 1, entity
        assert sends.kept == sends.distinct_ids, (entity, sends)

    assert short.problems(expect_hazard=True) == []
    [event_watch] = [k for k, kind in short.kinds.items() if kind == "event"]
    assert short.events_per_watch[event_watch] == 2  # a duplicate terminal event, kept
    assert short.forked_watches == 1  # the first poll kept twice: two polling chains
    assert short.sends["topic"].kept_twice >= 1


def test_a_whole_flow_logged_at_debug_everywhere_carries_no_secret(
    e2e: E2E, caplog: pytest.LogCaptureFixture
) -> None:
    # DEBUG for every logger (ours, azure-identity, msal, the AMQP stack, urllib3): tokens
    # travel in CBS frames and Authorization headers, and must not reach a log line.
    caplog.set_level(logging.DEBUG)
    for sdk in SDK_LOGGERS:  # another test in this process may have loaded function_app
        caplog.set_level(logging.DEBUG, logger=sdk)
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
