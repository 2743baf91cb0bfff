"""`pip install .` is the command line: no part of the package needs azure-functions.

azure-functions is the ``functions`` extra, installed only for the Functions app
(``function_app.py``, outside the package). The telemetry exporters are the ``export``
extra (and part of ``functions``): the package imports them only when export is
configured. A fresh venv per run would be slow, so the test imports every module of
``ops_status`` and runs the CLI's help in a subprocess in which importing
``azure.functions`` (or an exporter) fails, and checks the declared metadata.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, pkgutil, sys

class NoAzureFunctions:
    def find_spec(self, name, path=None, target=None):
        if name == "azure.functions" or name.startswith("azure.functions."):
            raise ModuleNotFoundError(f"{name} is not installed with the command line")
        return None

sys.meta_path.insert(0, NoAzureFunctions())
import ops_status
for module in pkgutil.walk_packages(ops_status.__path__, "ops_status."):
    importlib.import_module(module.name)
from ops_status.cli import main
for argv in (["--help"], ["check", "--help"]):
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code == 0, (argv, exit.code)
print("azure.functions" in sys.modules)
"""


def test_every_module_and_the_cli_help_work_without_azure_functions() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"


def test_azure_functions_is_only_in_the_functions_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {Requirement(text).name for text in project["dependencies"]}
    extra = {Requirement(text).name for text in project["optional-dependencies"]["functions"]}

    assert "azure-functions" not in names
    assert "azure-functions" in extra


# Telemetry export (ops_status/telemetry.py) needs these; the command line needs none.
EXPORTERS = {
    "azure-monitor-opentelemetry",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation-logging",
    "opentelemetry-sdk",
}


def test_the_exporters_are_in_the_export_extra_and_the_deployed_app_not_in_the_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    functions = {str(Requirement(text)) for text in extras["functions"]}
    export = {str(Requirement(text)) for text in extras["export"]}

    assert {Requirement(text).name for text in export} == EXPORTERS
    # The same requirements for the function app (requirements.txt is built from its extra).
    assert export <= functions
    assert not EXPORTERS & {Requirement(text).name for text in project["dependencies"]}


def test_the_deployed_lock_pins_every_exporter() -> None:
    lock = (ROOT / "requirements.txt").read_text()

    for name in EXPORTERS:
        assert f"\n{name}==" in lock, name


PROBE_NO_EXPORTERS = """
import importlib, pkgutil, sys

class NoExporters:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("azure.monitor", "opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(f"{name} is not installed with the command line")
        return None

sys.meta_path.insert(0, NoExporters())
import ops_status
for module in pkgutil.walk_packages(ops_status.__path__, "ops_status."):
    importlib.import_module(module.name)
from ops_status.cli import main
try:
    main(["check", "--help"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
print("ok")
"""


def test_every_module_and_the_cli_help_work_without_the_exporters() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE_NO_EXPORTERS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "ok"
