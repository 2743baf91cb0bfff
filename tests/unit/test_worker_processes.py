"""How many worker processes ``--processes`` defaults to, and the exit code of several."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops_status.cli import main
from ops_status.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from ops_status.cli.worker import worst_exit_code
from ops_status.worker import available_cores


def cgroup(tmp_path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="ascii")
    return str(tmp_path)


def test_without_a_cgroup_quota_every_core_of_the_affinity_mask_counts(tmp_path: Path) -> None:
    assert available_cores(8, cgroup_root=str(tmp_path / "none")) == 8
    assert available_cores(8, cgroup_root=cgroup(tmp_path, {"cpu.max": "max 100000\n"})) == 8


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("50000 100000\n", 1), ("200000 100000\n", 2), ("250000 100000\n", 3), ("1600000 100000", 8)],
    ids=["half a vCPU", "two", "two and a half: rounded up", "above the mask: the mask"],
)
def test_a_cgroup_v2_quota_caps_the_cores(tmp_path: Path, cpu_max: str, expected: int) -> None:
    assert available_cores(8, cgroup_root=cgroup(tmp_path, {"cpu.max": cpu_max})) == expected


def test_a_cgroup_v1_quota_caps_the_cores_and_minus_one_means_none(tmp_path: Path) -> None:
    quota = {"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert available_cores(8, cgroup_root=cgroup(tmp_path / "a", quota)) == 2
    unlimited = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert available_cores(8, cgroup_root=cgroup(tmp_path / "b", unlimited)) == 8


def test_an_unreadable_quota_is_ignored(tmp_path: Path) -> None:
    assert available_cores(4, cgroup_root=cgroup(tmp_path, {"cpu.max": "garbage"})) == 4


def test_the_worst_process_decides_the_exit_code() -> None:
    assert worst_exit_code([EXIT_OK, EXIT_OK]) == EXIT_OK
    assert worst_exit_code([EXIT_OK, EXIT_ERROR]) == EXIT_ERROR
    assert worst_exit_code([EXIT_USAGE, EXIT_ERROR]) == EXIT_USAGE
    # killed by a signal (multiprocessing reports -signum): a Service Bus/unexpected error
    assert worst_exit_code([EXIT_OK, -9]) == EXIT_ERROR
    assert worst_exit_code([]) == EXIT_ERROR


def test_processes_below_one_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--processes", "0"]) == EXIT_USAGE
    assert "--processes must be at least 1" in capsys.readouterr().err
