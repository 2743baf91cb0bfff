"""What the CLI prints when its reader goes away, and how a throttled read reads."""

from __future__ import annotations

import subprocess
import sys

from ops_status.cli.output import status_text
from ops_status.observation import ReadFailure, ReadFailureKind

# Prints more than a pipe buffer holds after the reader has gone, then exits with the
# code a command would return: 1, "failed".
WRITER = """
from ops_status.cli.output import emit
for n in range(20000):
    emit("event line %d" % n)
raise SystemExit(1)
"""


def test_a_reader_that_stops_early_does_not_change_the_exit_code() -> None:
    # `ops-status listen ... | head -1`: the gate must still see the outcome's code.
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()  # the reader is gone: further writes get EPIPE
    _, err = process.communicate(timeout=60)

    assert process.returncode == 1
    assert b"BrokenPipeError" not in err
    assert err == b""


def test_a_throttled_read_shows_the_retry_after_it_asked_for() -> None:
    failure = ReadFailure(ReadFailureKind.THROTTLED, "HTTP 429", 429, None, 5.0)

    assert status_text(failure) == "throttled (HTTP 429; Retry-After 5 s)"
