"""locks: the two dependency locks, generated with uv and checked without it.

- ``requirements.txt``, the deployed app's lock, from ``pyproject.toml``: its dependencies
  and the ``functions`` extra. Remote build and ``func azure functionapp publish`` read it.
- ``requirements-dev.txt``, ``make``'s ``.venv``, from ``requirements-dev.in``, which
  includes ``requirements.txt`` as is: tests run on the deployed versions.

Both pin every package with hashes, resolved for Python 3.11 (the app's runtime, see
``infra/azuredeploy.json``) on any platform::

    python tools/locks.py compile [--upgrade]   # make lock / make lock-upgrade (needs uv)
    python tools/locks.py check                 # make lint: offline, resolves nothing

``compile`` keeps every pin that still satisfies the inputs (uv prefers the existing lock)
unless ``--upgrade``. It writes a digest line under uv's header: a hash of the inputs
(the requirement lines only, so a comment edit needs no new lock) and one of the lock's
own body. ``check`` recomputes both, so it fails, naming the fix, when an input changed
since the lock was written, when a lock was edited by hand, or when the dev lock was not
regenerated after the runtime lock. It also checks what a digest cannot vouch for: every
declared requirement is met by a pin, every pin carries hashes, and the dev lock pins the
runtime lock's versions exactly. A new upstream release never changes its verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = "requirements.txt"
DEV_INPUT = "requirements-dev.in"
DEV_LOCK = "requirements-dev.txt"
FIX = "run `make lock`"

# What decides a resolution; part of each input digest, so changing it stales the locks.
COMPILE_OPTIONS = (
    "--universal",
    "--python-version",
    "3.11",
    "--generate-hashes",
    "--no-config",
    "--custom-compile-command",
    "make lock",
)
# Markers in the declared inputs are judged for the deployed app's host.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
DIGEST_PREFIX = "# locks.py digest:"
_DIGEST = re.compile(
    re.escape(DIGEST_PREFIX)
    + r" inputs sha256=(?P<inputs>[0-9a-f]{64}) body sha256=(?P<body>[0-9a-f]{64})$"
)
_INCLUDE = re.compile(r"^(?:-r|--requirement|-c|--constraint)[\s=]+(?P<path>\S+)$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: int


def logical_lines(text: str) -> list[str]:
    """Requirement-file lines without comments, continuations joined, blanks dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = " ".join((pending + line).split())
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(" ".join(pending.split()))
    return lines


def parse_pins(text: str) -> list[Pin]:
    """The ``name==version [; marker] --hash=...`` entries of a lock."""
    pins = []
    for line in logical_lines(text):
        spec, *options = line.split(" --")
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier
        if specifier.operator != "==":
            raise InvalidRequirement(f"not a pin: {spec}")
        pins.append(
            Pin(
                canonicalize_name(requirement.name),
                Version(specifier.version),
                requirement.marker,
                sum(option.startswith("hash=") for option in options),
            )
        )
    return pins


def runtime_requirements(root: Path) -> dict[str, Any]:
    """What the runtime lock is generated from: pyproject.toml's requirement strings."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "functions": project.get("optional-dependencies", {}).get("functions", []),
    }


def runtime_digest(root: Path) -> str:
    return _sha256(json.dumps([COMPILE_OPTIONS, runtime_requirements(root)], sort_keys=True))


def dev_digest(root: Path) -> str:
    """The dev input's requirement lines, and those of every file it includes (-r, -c)."""
    return _sha256(json.dumps([COMPILE_OPTIONS, _expand(root, DEV_INPUT)]))


def _expand(root: Path, name: str) -> list[object]:
    expanded: list[object] = []
    for line in logical_lines((root / name).read_text()):
        include = _INCLUDE.match(line)
        expanded.append([line, _expand(root, include["path"])] if include else line)
    return expanded


def body_digest(text: str) -> str:
    return _sha256("".join(line for line in text.splitlines(keepends=True) if not _is_digest(line)))


def _is_digest(line: str) -> bool:
    return line.startswith(DIGEST_PREFIX)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stamp(path: Path, inputs: str) -> None:
    """Write the digest line under uv's two header lines."""
    lines = [line for line in path.read_text().splitlines(keepends=True) if not _is_digest(line)]
    body = body_digest("".join(lines))
    header = 2 if len(lines) >= 2 and lines[1].startswith("#") else 0
    lines.insert(header, f"{DIGEST_PREFIX} inputs sha256={inputs} body sha256={body}\n")
    path.write_text("".join(lines))


def compile_locks(root: Path, uv: str, *, upgrade: bool) -> None:
    extra = ["--upgrade"] if upgrade else []
    jobs = (
        (["pyproject.toml", "--extra", "functions"], RUNTIME_LOCK, runtime_digest),
        ([DEV_INPUT], DEV_LOCK, dev_digest),
    )
    for inputs, lock, digest in jobs:  # in this order: the dev lock includes the runtime one
        command = [uv, "pip", "compile", *inputs, *COMPILE_OPTIONS, "--quiet", "-o", lock]
        subprocess.run([*command, *extra], cwd=root, check=True)
        stamp(root / lock, digest(root))


def check_locks(root: Path) -> list[str]:
    """Every way the locks disagree with their inputs or each other; empty when in sync."""
    problems: list[str] = []
    runtime = _check_lock(root, RUNTIME_LOCK, runtime_digest(root), "pyproject.toml", problems)
    dev = _check_lock(root, DEV_LOCK, dev_digest(root), DEV_INPUT, problems)
    if runtime is None or dev is None:
        return problems
    declared = runtime_requirements(root)
    for text in [*declared["dependencies"], *declared["functions"]]:
        _check_met(RUNTIME_LOCK, Requirement(text), runtime, problems)
    for line in logical_lines((root / DEV_INPUT).read_text()):
        if not line.startswith("-"):
            _check_met(DEV_LOCK, Requirement(line), dev, problems)
    dev_versions = {(pin.name, pin.version) for pin in dev}
    for pin in runtime:
        if (pin.name, pin.version) not in dev_versions:
            problems.append(
                f"{DEV_LOCK}: does not pin {pin.name}=={pin.version} as {RUNTIME_LOCK} does; {FIX}"
            )
    return problems


def _check_lock(
    root: Path, lock: str, inputs: str, source: str, problems: list[str]
) -> list[Pin] | None:
    path = root / lock
    if not path.exists():
        problems.append(f"{lock}: missing; {FIX}")
        return None
    text = path.read_text()
    digest = next((m for line in text.splitlines() if (m := _DIGEST.match(line))), None)
    if digest is None:
        problems.append(f"{lock}: has no digest line, so `make lock` did not write it; {FIX}")
        return None
    if digest["inputs"] != inputs:
        problems.append(f"{lock}: out of date: {source} changed since it was generated; {FIX}")
    if digest["body"] != body_digest(text):
        problems.append(f"{lock}: edited by hand since `make lock` wrote it; {FIX}")
    try:
        pins = parse_pins(text)
    except (InvalidRequirement, ValueError) as exc:
        problems.append(f"{lock}: unreadable ({exc}); {FIX}")
        return None
    problems.extend(
        f"{lock}: {pin.name}=={pin.version} has no --hash; {FIX}" for pin in pins if not pin.hashes
    )
    return pins


def _check_met(lock: str, requirement: Requirement, pins: list[Pin], problems: list[str]) -> None:
    if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
        return
    name = canonicalize_name(requirement.name)
    candidates = [
        pin
        for pin in pins
        if pin.name == name and (pin.marker is None or pin.marker.evaluate(TARGET))
    ]
    if not any(requirement.specifier.contains(pin.version, prereleases=True) for pin in candidates):
        found = ", ".join(str(pin.version) for pin in candidates) or "nothing"
        problems.append(f"{lock}: pins {found} for `{requirement}`; {FIX}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/locks.py", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("compile", help="regenerate both locks with uv")
    generate.add_argument("--uv", default="uv", help="the uv executable")
    generate.add_argument("--upgrade", action="store_true", help="move pins to the newest allowed")
    commands.add_parser("check", help="fail if a lock is out of sync (offline)")
    args = parser.parse_args(argv)
    if args.command == "compile":
        compile_locks(args.root, args.uv, upgrade=args.upgrade)
        return 0
    problems = check_locks(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
