"""tools/locks.py check: the locks fail `make lint` as soon as they drift from their inputs.

Each test copies the lock inputs and outputs into a temporary directory, changes one
thing the way a developer would, and runs the check as `make lint` does: offline, with
no resolver, so its verdict cannot depend on what the index serves that day.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = (
    "pyproject.toml",
    "requirements.txt",
    "requirements-dev.in",
    "requirements-dev.txt",
    "tools/locks.py",
)


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "tools" / "locks.py"), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_the_committed_locks_are_in_sync_with_their_inputs() -> None:
    result = run_check(ROOT)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_copy_of_the_repository_passes_before_any_edit(repo: Path) -> None:
    assert run_check(repo).returncode == 0


def test_a_new_runtime_dependency_stales_the_runtime_lock(repo: Path) -> None:
    edit(repo / "pyproject.toml", '    "urllib3>=2.2",\n', '    "urllib3>=2.2",\n    "six>=1",\n')

    result = run_check(repo)

    assert result.returncode == 1
    assert "requirements.txt: out of date: pyproject.toml changed" in result.stderr
    assert "requirements.txt: pins nothing for `six>=1`" in result.stderr
    assert "run `make lock`" in result.stderr


def test_a_raised_lower_bound_the_pin_misses_is_named(repo: Path) -> None:
    edit(repo / "pyproject.toml", '"urllib3>=2.2"', '"urllib3>=99"')

    result = run_check(repo)

    assert result.returncode == 1
    assert "requirements.txt: pins 2.8.0 for `urllib3>=99`" in result.stderr


def test_the_functions_extra_is_an_input_of_the_runtime_lock(repo: Path) -> None:
    edit(repo / "pyproject.toml", '"azure-functions>=1.21,<2"', '"azure-functions>=1.22,<2"')

    result = run_check(repo)

    assert result.returncode == 1
    assert "requirements.txt: out of date" in result.stderr


def test_a_new_dev_tool_stales_the_dev_lock_only(repo: Path) -> None:
    with (repo / "requirements-dev.in").open("a") as handle:
        handle.write("six\n")

    result = run_check(repo)

    assert result.returncode == 1
    assert "requirements-dev.txt: out of date: requirements-dev.in changed" in result.stderr
    assert "requirements-dev.txt: pins nothing for `six`" in result.stderr
    assert "requirements.txt:" not in result.stderr.replace("requirements-dev.txt:", "")


def test_comments_and_blank_lines_in_the_inputs_need_no_new_lock(repo: Path) -> None:
    edit(repo / "pyproject.toml", "dependencies = [\n", "dependencies = [\n    # a note\n\n")
    with (repo / "requirements-dev.in").open("a") as handle:
        handle.write("\n# another note\n")

    assert run_check(repo).returncode == 0


def test_a_hand_edited_runtime_pin_is_caught_in_both_locks(repo: Path) -> None:
    edit(repo / "requirements.txt", "urllib3==2.8.0", "urllib3==2.7.0")

    result = run_check(repo)

    assert result.returncode == 1
    assert "requirements.txt: edited by hand" in result.stderr
    # The dev lock includes the runtime lock: it is stale and no longer agrees with it.
    assert "requirements-dev.txt: out of date: requirements-dev.in changed" in result.stderr
    assert "requirements-dev.txt: does not pin urllib3==2.7.0" in result.stderr


def test_a_lock_written_by_another_tool_is_refused(repo: Path) -> None:
    lock = repo / "requirements-dev.txt"
    lines = lock.read_text().splitlines(keepends=True)
    lock.write_text("".join(line for line in lines if "digest" not in line))

    result = run_check(repo)

    assert result.returncode == 1
    assert "requirements-dev.txt: has no digest line" in result.stderr
