"""docs/pipelines.md, run: the recipes' scripts as written, against the local stack.

Each recipe's shell scripts (GitHub Actions ``run: |`` blocks, Azure DevOps
``inlineScript: |`` blocks) are extracted from the markdown and run by bash, in order, in
the environment the pipeline would give them. Only ``az`` and ``curl`` (they need Azure)
are replaced by shell functions: ``az`` records its arguments, ``curl`` answers the way
ARM answers a scale (202 with an ``Azure-AsyncOperation`` header pointing at the ARM
simulator). Everything else, the header parsing and every ``python -m ops_status``
command, runs for real against the stack with the worker consuming the queue.

The gate subscription the stack offers is the one the recipe's ``az servicebus`` lines
create: same name, same correlation filter (read from the recorded arguments in a first
dry pass), so a recipe whose names or filter disagree with its own ``listen`` line fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulators.arm import Step
from emulators.servicebus import SubscriptionConfig
from emulators.stack import EVENTS_TOPIC, INTAKE_QUEUE, LocalStack
from tests.e2e.conftest import FAST_POLLING, make_e2e, running_worker

ROOT = Path(__file__).parents[2]
RECIPES = ROOT / "docs" / "pipelines.md"
CACHE_ID = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Cache/redisEnterprise/cache"

FAKES = r"""
az() {
  printf '%s\x1f' "$@" >> "$AZ_LOG"; printf '\n' >> "$AZ_LOG"
  if [ "$1 $2" = "account get-access-token" ]; then echo "fake-arm-token"; fi
}
curl() {
  local headers="" output=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --dump-header|-D) headers="$2"; shift ;;
      --output|-o) output="$2"; shift ;;
    esac
    shift
  done
  printf "$FAKE_ARM_HEADERS" "$FAKE_ASYNC_OPERATION" > "$headers"
  printf '{}' > "$output"
}
"""
DRY_RUN = "python() { :; }\n"
HTTP2_HEADERS = "HTTP/2 202\r\nazure-asyncoperation: %s\r\nretry-after: 15\r\n\r\n"
HTTP11_HEADERS = (
    "HTTP/1.1 202 Accepted\r\nCache-Control: no-cache\r\nAzure-AsyncOperation: %s\r\n"
    "Location: https://management.azure.com/x\r\nRetry-After: 15\r\n\r\n"
)


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def section(title: str) -> str:
    """The markdown from the ``## {title}`` heading to the next ``## `` heading."""
    text = RECIPES.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def scripts(markdown: str, key: str) -> list[str]:
    """Every ``{key}: |`` block scalar in the YAML code blocks of ``markdown``, dedented."""
    found: list[str] = []
    lines = markdown.splitlines()
    for number, line in enumerate(lines):
        match = re.match(rf"^(\s*)(?:- )?{key}: \|\s*$", line)
        if not match:
            continue
        indent = len(match.group(1))
        body: list[str] = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        found.append("\n".join(b[width:] for b in body).strip() + "\n")
    return found


def bash(script: str, environment: dict[str, str], cwd: Path, *, timeout: float = 30) -> Ran:
    """Run ``script`` with the fakes; kill the whole process group if it hangs."""
    process = subprocess.Popen(
        ["bash", "-c", FAKES + script],
        env=environment,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"script did not finish in {timeout}s:\n{script}\n{out}\n{err}")
    return Ran(process.returncode, out, err)


def az_calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]


def option(call: list[str], *names: str) -> str:
    for name in names:
        if name in call:
            return call[call.index(name) + 1]
    raise AssertionError(f"none of {names} in {call}")


def base_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID")
        and not k.startswith(("OPS_STATUS_", "ServiceBusConnection", "IDENTITY_"))
    }
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    environment["PYTHONPATH"] = str(ROOT)
    environment["AZ_LOG"] = str(tmp_path / "az.log")
    # submit's record of what it sent: this test's own, never the user's ~/.cache.
    environment["OPS_STATUS_SUBMIT_HISTORY"] = str(tmp_path / "submitted.json")
    environment.update(variables)
    return environment


def gate_subscription(calls: list[list[str]]) -> tuple[str, str]:
    """(subscription name, correlation id) the recipe's az lines create and filter on."""
    [create] = [c for c in calls if c[:4] == ["servicebus", "topic", "subscription", "create"]]
    [rule] = [
        c for c in calls if c[:5] == ["servicebus", "topic", "subscription", "rule", "create"]
    ]
    [default] = [
        c for c in calls if c[:5] == ["servicebus", "topic", "subscription", "rule", "delete"]
    ]
    name = option(create, "-n", "--name")
    assert option(rule, "--subscription-name") == option(default, "--subscription-name") == name
    assert option(rule, "--filter-type") == "CorrelationFilter"
    assert option(default, "-n", "--name") == "$Default"
    for call in (create, rule, default):
        assert option(call, "--topic-name") == EVENTS_TOPIC
    return name, option(rule, "--correlation-id")


def run_recipe(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    blocks: list[str],
    variables: dict[str, str],
    steps: list[Step],
    headers: str,
    identity_based_env: bool,
) -> tuple[list[Ran], list[list[str]], str]:
    """Dry pass (python stubbed) to learn the gate, then the real pass on a stack with it."""
    work = tmp_path / "dry"
    work.mkdir()
    dry = base_environment(
        tmp_path,
        FAKE_ASYNC_OPERATION="https://management.azure.com/placeholder",
        FAKE_ARM_HEADERS=headers,
        OPS_STATUS_INTAKE_QUEUE=INTAKE_QUEUE,
        OPS_STATUS_EVENTS_TOPIC=EVENTS_TOPIC,
        **variables,
    )
    for block in blocks:
        assert bash(DRY_RUN + block, dry, work).code == 0, block
    gate, correlation_id = gate_subscription(az_calls(tmp_path / "az.log"))
    (tmp_path / "az.log").unlink()

    gate_config = SubscriptionConfig(filter={"sys.correlation_id": correlation_id})
    with LocalStack(extra_subscriptions={gate: gate_config}) as stack:
        e2e = make_e2e(stack, monkeypatch)
        stack.arm.script("op-recipe", steps)
        settings = stack.environment(**FAST_POLLING)
        del settings["OPS_STATUS_CREDENTIAL"]  # the CLI's own default applies
        if not identity_based_env:
            settings.pop("ServiceBusConnection__fullyQualifiedNamespace")
        environment = {
            **base_environment(tmp_path, **variables),
            **settings,
            "FAKE_ASYNC_OPERATION": stack.arm.status_url("op-recipe"),
            "FAKE_ARM_HEADERS": headers,
        }
        if "OPS_STATUS_NAMESPACE" in variables:
            environment["OPS_STATUS_NAMESPACE"] = stack.servicebus.fully_qualified_namespace
        real = tmp_path / "real"
        real.mkdir()
        with running_worker(e2e):
            ran = [bash(block, environment, real) for block in blocks]
        e2e.client.close()
    return ran, az_calls(tmp_path / "az.log"), gate


def test_the_github_actions_recipe_submits_then_gates_on_a_succeeded_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = scripts(section("GitHub Actions"), "run")
    variables = {
        "GITHUB_RUN_ID": "9100200300",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_REPOSITORY": "contoso/infra",
        "GITHUB_SHA": "3f9c2e1",
        "OPS_STATUS_RESOURCE_GROUP": "rg-ops-status",
        "CACHE_ID": CACHE_ID,
    }

    ran, calls, gate = run_recipe(
        tmp_path,
        monkeypatch,
        blocks=blocks,
        variables=variables,
        steps=[Step.running(status="Updating", repeat=2), Step.succeeded()],
        headers=HTTP2_HEADERS,
        identity_based_env=True,
    )

    opened, submitted, waited, deleted = ran
    assert gate == "gate-9100200300-2"
    assert opened.code == 0
    assert submitted.code == 0, submitted.err
    assert re.fullmatch(r"[0-9a-f]{32}\n", submitted.out)
    assert submitted.err == ""  # a correlation id was given: no warning
    assert waited.code == 0, waited.err
    assert " Succeeded operation=op-recipe correlationId=9100200300-2 " in waited.out
    assert deleted.code == 0
    assert calls[-1][:4] == ["servicebus", "topic", "subscription", "delete"]
    assert option(calls[-1], "-n") == gate


def test_the_azure_devops_recipe_gates_on_a_failed_scale_with_arms_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = scripts(section("Azure DevOps"), "inlineScript")
    variables = {
        "BUILD_BUILDID": "4711",
        "SYSTEM_JOBATTEMPT": "1",
        "BUILD_DEFINITIONNAME": "scale-cache",
        "BUILD_SOURCEVERSION": "3f9c2e1",
        "OPS_STATUS_RESOURCE_GROUP": "rg-ops-status",
        "OPS_STATUS_NAMESPACE": "sb-opsstatus-abc123.servicebus.windows.net",
        "CACHE_ID": CACHE_ID,
    }

    ran, calls, gate = run_recipe(
        tmp_path,
        monkeypatch,
        blocks=blocks,
        variables=variables,
        steps=[Step.running(status="Updating"), Step.failed()],
        headers=HTTP11_HEADERS,
        # Azure DevOps upper-cases variable names: the recipe passes --namespace instead.
        identity_based_env=False,
    )

    submitted, waited, deleted = ran
    assert gate == "gate-4711-1"
    assert submitted.code == 0, submitted.err
    assert re.search(r"^[0-9a-f]{32}$", submitted.out, re.MULTILINE)
    assert waited.code == 1, waited.err
    assert " Failed operation=op-recipe correlationId=4711-1 reason=OperationFailed" in waited.out
    assert '"code": "ResourceOperationFailure"' in waited.out
    assert deleted.code == 0
    assert calls[-1][:4] == ["servicebus", "topic", "subscription", "delete"]
    assert option(calls[-1], "-n") == gate


def test_the_blocking_watch_line_runs_without_service_bus(tmp_path: Path) -> None:
    [block] = re.findall(r"```bash\n(python -m ops_status watch .*?)```", section(
        "Blocking instead: `watch`"
    ), re.DOTALL)  # fmt: skip

    with LocalStack() as stack:
        stack.arm.script("op-block", [Step.running(percent_complete=50), Step.succeeded()])
        environment = {
            **base_environment(tmp_path, GITHUB_RUN_ID="1", GITHUB_RUN_ATTEMPT="1"),
            "OPS_STATUS_ARM_ENDPOINT": stack.arm.endpoint,
            **stack.identity.environ(),
            **FAST_POLLING,
            "STATUS_URL": stack.arm.status_url("op-block"),
        }
        result = bash(block, environment, tmp_path)

    assert result.code == 0, result.err
    assert " Succeeded operation=op-block correlationId=1-1 polls=2" in result.out
    assert "next check in" in result.err


def test_the_header_parsing_shown_alone_is_the_one_the_recipes_run() -> None:
    [snippet] = re.findall(r"```bash\n(TOKEN=.*?)```", section("The pattern"), re.DOTALL)
    recipes = [
        line.strip() for line in (section("GitHub Actions") + section("Azure DevOps")).splitlines()
    ]

    for line in snippet.splitlines():
        text = line.strip().removesuffix("\\").strip()
        assert sum(text in recipe for recipe in recipes) == 2, line  # once in each recipe
