"""The deployment templates, checked against the code they deploy. No Azure needed.

``infra/azuredeploy.json`` (resource group) and ``infra/grant-reader.json`` (subscription)
are plain ARM JSON. A small evaluator below parses every ARM expression and computes the
values that matter (app settings, names, role scopes) for given parameters, with
``reference()`` results kept symbolic; the tests then compare those values with
``ops_status.settings``, ``host.json``, ``function_app.py``, ``local.settings.sample.json``
and the poll policy. The arithmetic behind lock duration, duplicate-detection windows,
redelivery back-off and message TTL is written out once here and in ``docs/deployment.md``;
role assignments are expanded (copy loops included) and checked for who can reach which
queue: pipelines may send only to the intake queue, only the app to the polls queue.

One module on purpose, though long: its ARM-expression evaluator is shared by every
test, and each test pins one property of one document (the template) against the code.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ops_status import settings as code
from ops_status.decision import FinalStatus
from ops_status.policy import PollPolicy, poll_delay

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN_TEMPLATE = "azuredeploy.json"
GRANT_TEMPLATE = "grant-reader.json"
EXAMPLE_PARAMETERS = "azuredeploy.parameters.example.json"
LEFT_TO_DEFAULTS = "settings-left-to-defaults.json"

# Built-in role definition ids (Azure built-in roles reference).
SERVICE_BUS_DATA_RECEIVER = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"
SERVICE_BUS_DATA_SENDER = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
SERVICE_BUS_DATA_OWNER = "090c5cfd-751d-490a-894a-3ce6f1109419"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    SERVICE_BUS_DATA_OWNER: "Azure Service Bus Data Owner",
}

# Control-plane permissions of the built-in roles that could deploy infra/grant-reader.json,
# (actions, notActions), from
# learn.microsoft.com/azure/role-based-access-control/built-in-roles/privileged.
DEPLOYER_ROLES = {
    "Owner": (["*"], []),
    "Contributor": (["*"], ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write"]),
    "User Access Administrator": (
        ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        [],
    ),
    "Role Based Access Control Administrator": (
        [
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        [],
    ),
}

# The newest stable apiVersion of each resource type, looked up on this date in
# Azure/azure-rest-api-specs (each provider's readme.md tags; see docs/deployment.md).
API_VERSIONS_CHECKED_ON = "2026-12-01"
EXPECTED_API_VERSIONS = {
    "azuredeploy.json": {
        "Microsoft.ManagedIdentity/userAssignedIdentities": "2026-05-31",
        "Microsoft.ServiceBus/namespaces": "2026-01-01",
        "Microsoft.ServiceBus/namespaces/queues": "2026-01-01",
        "Microsoft.ServiceBus/namespaces/topics": "2026-01-01",
        "Microsoft.ServiceBus/namespaces/topics/subscriptions": "2026-01-01",
        "Microsoft.ServiceBus/namespaces/topics/subscriptions/rules": "2026-01-01",
        "Microsoft.Storage/storageAccounts": "2026-09-01",
        "Microsoft.Storage/storageAccounts/blobServices": "2026-09-01",
        "Microsoft.Storage/storageAccounts/blobServices/containers": "2026-09-01",
        "Microsoft.OperationalInsights/workspaces": "2026-03-01",
        "Microsoft.Insights/components": "2020-02-02",
        "Microsoft.Web/serverfarms": "2026-09-01",
        "Microsoft.Web/sites": "2026-09-01",
        "Microsoft.Authorization/roleAssignments": "2022-04-01",
    },
    "grant-reader.json": {
        "Microsoft.Authorization/roleDefinitions": "2022-04-01",
        "Microsoft.Authorization/roleAssignments": "2022-04-01",
    },
}

# Property names arm-ttk's "Template Should Not Contain Blanks" lets be empty
# (Azure/arm-ttk testcases/deploymentTemplate/Template-Should-Not-Contain-Blanks.test.ps1).
ARM_TTK_MAY_BE_EMPTY = {
    "resources",
    "outputs",
    "variables",
    "parameters",
    "functions",
    "properties",
    "defaultValue",
    "accessPolicies",
    "value",
    "promotionCode",
    "inputs",
    "notEquals",
    "clientId",
    "allowedCallerIpAddresses",
}

# Settings the Functions host reads for the trigger connection (not ops_status.settings):
# https://learn.microsoft.com/azure/azure-functions/functions-reference#common-properties-for-identity-based-connections
TRIGGER_ONLY_SETTINGS = {
    f"{code.SERVICE_BUS_CONNECTION}__credential",
    f"{code.SERVICE_BUS_CONNECTION}__clientId",
}
# App settings the Flex Consumption plan rejects or ignores (runtime and deployment live in
# functionAppConfig; there is no content file share).
FLEX_REJECTED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
}

# Margins stated in the template metadata and docs/deployment.md.
BACKLOG_MARGIN = timedelta(minutes=15)
"""Time a redelivered watch message may wait behind others before a worker takes it."""
TOPIC_BACKLOG_MARGIN = timedelta(minutes=10)
"""The same for the next scheduled watch that races a redelivered step to publish."""
SERVICE_BUS_MAX_LOCK = timedelta(minutes=5)
SERVICE_BUS_MIN_WINDOW = timedelta(seconds=20)
SERVICE_BUS_MAX_WINDOW = timedelta(days=7)


# -- files ------------------------------------------------------------------------------


@cache
def load_json(name: str) -> Any:
    return json.loads((INFRA / name).read_text())


def main_template() -> dict[str, Any]:
    return load_json(MAIN_TEMPLATE)


def grant_template() -> dict[str, Any]:
    return load_json(GRANT_TEMPLATE)


@cache
def host_json() -> dict[str, Any]:
    return json.loads((ROOT / "host.json").read_text())


# -- durations --------------------------------------------------------------------------

_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$")


def iso_duration(text: str) -> timedelta:
    """An ISO 8601 duration as Service Bus takes it (days and time only, no years/months)."""
    match = _ISO_DURATION.match(text)
    assert match, f"not an ISO 8601 day-time duration: {text!r}"
    assert text not in ("P", "PT"), f"an empty duration: {text!r}"
    return _delta(match)


def timespan(text: str) -> timedelta:
    """A .NET TimeSpan string as host.json uses it ([d.]hh:mm:ss[.fff])."""
    match = _TIMESPAN.match(text)
    assert match, f"not a TimeSpan: {text!r}"
    return _delta(match)


def _delta(match: re.Match[str]) -> timedelta:
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def test_duration_parsers_read_service_bus_and_host_json_forms() -> None:
    assert iso_duration("PT1M") == timedelta(minutes=1)
    assert iso_duration("P8D") == timedelta(days=8)
    assert iso_duration("P1DT2H3M4.5S") == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    assert timespan("00:05:00") == timedelta(minutes=5)
    assert timespan("1.02:00:00.80") == timedelta(days=1, hours=2, seconds=0.8)
    with pytest.raises(AssertionError):
        iso_duration("PT")
    with pytest.raises(AssertionError):
        iso_duration("P1M")  # months: not a Service Bus duration


# -- ARM expressions: parser ------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Member:
    target: Any
    name: str


@dataclass(frozen=True)
class Index:
    target: Any
    index: Any


Node = Literal | Call | Member | Index

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[()\[\],.]))"
)

# ARM template functions (learn.microsoft.com/azure/azure-resource-manager/templates/
# template-functions), lowercased: ARM function names are case-insensitive.
ARM_FUNCTIONS = {
    name.lower()
    for name in re.findall(
        r"\w+",
        """
        array concat contains createArray empty first indexOf intersection items join last
        lastIndexOf length max min range skip take union filter map mapValues reduce sort
        toObject tryGet coalesce equals greater greaterOrEquals less lessOrEquals deployment
        environment parameters variables and bool false if not or true add copyIndex div
        float int mod mul sub createObject json null objectKeys shallowMerge
        extensionResourceId managementGroup managementGroupResourceId pickZones providers
        reference references resourceGroup resourceId subscription subscriptionResourceId
        tenant tenantResourceId base64 base64ToJson base64ToString dataUri dataUriToString
        endsWith format guid newGuid padLeft replace split startsWith string substring toLower
        toUpper trim uniqueString uri uriComponent uriComponentToString utcNow dateTimeAdd
        dateTimeFromEpoch dateTimeToEpoch
        """,
    )
}


class ArmSyntaxError(ValueError):
    pass


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[") and not value.startswith("[[")


def parse_expression(text: str) -> Node:
    """Parse one template string "[...]" into a tree, or raise ``ArmSyntaxError``."""
    if not (text.startswith("[") and text.endswith("]")):
        raise ArmSyntaxError(f"an expression must be enclosed in [ ]: {text!r}")
    tokens = list(_tokenize(text[1:-1]))
    node, position = _parse(tokens, 0, text)
    if position != len(tokens):
        raise ArmSyntaxError(f"unexpected {tokens[position][1]!r} in {text!r}")
    return node


def _tokenize(text: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            return
        match = _TOKEN.match(text, position)
        if not match:
            raise ArmSyntaxError(f"cannot read {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        yield kind, match.group(kind)
        position = match.end()


def _parse(tokens: list[tuple[str, str]], position: int, text: str) -> tuple[Node, int]:
    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise ArmSyntaxError(f"unexpected end of {text!r}")
        token = tokens[position]
        if expected is not None and token[1] != expected:
            raise ArmSyntaxError(f"expected {expected!r}, got {token[1]!r} in {text!r}")
        position += 1
        return token

    def peek() -> str | None:
        return tokens[position][1] if position < len(tokens) else None

    kind, value = take()
    node: Node
    if kind == "string":
        node = Literal(value[1:-1].replace("''", "'"))
    elif kind == "number":
        node = Literal(int(value))
    elif kind == "name":
        take("(")
        args: list[Node] = []
        if peek() != ")":
            while True:
                arg, position = _parse(tokens, position, text)
                args.append(arg)
                if peek() == ",":
                    take(",")
                    continue
                break
        take(")")
        node = Call(value, tuple(args))
    else:
        raise ArmSyntaxError(f"unexpected {value!r} in {text!r}")
    while peek() in (".", "["):
        if take()[1] == ".":
            kind, name = take()
            if kind != "name":
                raise ArmSyntaxError(f"expected a property name after '.' in {text!r}")
            node = Member(node, name)
        else:
            index, position = _parse(tokens, position, text)
            take("]")
            node = Index(node, index)
    return node, position


def walk_strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string in a JSON document, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{number}]")
    elif isinstance(value, str):
        yield path, value


def calls(node: Any) -> Iterator[Call]:
    if isinstance(node, Call):
        yield node
        for arg in node.args:
            yield from calls(arg)
    elif isinstance(node, Member):
        yield from calls(node.target)
    elif isinstance(node, Index):
        yield from calls(node.target)
        yield from calls(node.index)


def expressions(document: Any) -> Iterator[tuple[str, Node]]:
    for path, text in walk_strings(document):
        if is_expression(text):
            yield path, parse_expression(text)


def referenced(document: Any, function: str) -> set[str]:
    """Names passed as literals to ``parameters(...)`` or ``variables(...)``."""
    names = set()
    for _, node in expressions(document):
        for call in calls(node):
            if call.name.lower() == function and call.args and isinstance(call.args[0], Literal):
                names.add(call.args[0].value)
    return names


# -- ARM expressions: evaluator ---------------------------------------------------------


@dataclass(frozen=True)
class Unknown:
    """A value only known at deployment time (the result of ``reference()``)."""

    text: str

    def __str__(self) -> str:
        return self.text


SUBSCRIPTION_ID = "11111111-2222-3333-4444-555555555555"
RESOURCE_GROUP = "rg-ops-status"


@dataclass
class Arm:
    """Evaluates a template's expressions for given parameter values."""

    template: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    copy_index: int | None = None
    _parameters: dict[str, Any] = field(default_factory=dict)
    _variables: dict[str, Any] = field(default_factory=dict)

    @property
    def at_subscription(self) -> bool:
        return "subscriptionDeploymentTemplate" in self.template["$schema"]

    # -- entry points
    def resolve(self, value: Any) -> Any:
        """A JSON value with every expression in it evaluated."""
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if is_expression(value):
            return self.evaluate(parse_expression(value))
        if isinstance(value, str) and value.startswith("[["):
            return value[1:]
        return value

    def parameter(self, name: str) -> Any:
        if name not in self._parameters:
            spec = self.template["parameters"][name]
            if name in self.overrides:
                self._parameters[name] = self.overrides[name]
            elif "defaultValue" in spec:
                self._parameters[name] = self.resolve(spec["defaultValue"])
            else:
                raise KeyError(f"parameter {name!r} has no default and was not given")
        return self._parameters[name]

    def variable(self, name: str) -> Any:
        if name not in self._variables:
            self._variables[name] = self.resolve(self.template["variables"][name])
        return self._variables[name]

    def resources(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.template["resources"] if r["type"].lower() == type_.lower()]

    def resource(self, type_: str) -> dict[str, Any]:
        (found,) = self.resources(type_)
        return found

    def deployed(self, resource: dict[str, Any]) -> bool:
        return bool(self.resolve(resource.get("condition", True)))

    def resource_id_of(self, resource: dict[str, Any]) -> str:
        names = self.resolve(resource["name"]).split("/")
        builder = self.subscription_resource_id if self.at_subscription else self.resource_id
        return builder(resource["type"], *names)

    def scope_id(self, resource: dict[str, Any]) -> str:
        """The resource id an extension resource (role assignment) applies to."""
        if "scope" not in resource:
            return self.deployment_scope_id
        scope = self.resolve(resource["scope"])
        return scope if scope.startswith("/") else f"{self.deployment_scope_id}/providers/{scope}"

    @property
    def deployment_scope_id(self) -> str:
        subscription = f"/subscriptions/{SUBSCRIPTION_ID}"
        return (
            subscription
            if self.at_subscription
            else f"{subscription}/resourceGroups/{RESOURCE_GROUP}"
        )

    def resource_id(self, type_: str, *names: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}" + _provider_path(
            type_, names
        )

    def subscription_resource_id(self, type_: str, *names: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION_ID}" + _provider_path(type_, names)

    # -- evaluation
    def evaluate(self, node: Node) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Member):
            target = self.evaluate(node.target)
            if isinstance(target, Unknown):
                return Unknown(f"{target.text}.{node.name}")
            return _member(target, node.name)
        if isinstance(node, Index):
            target, index = self.evaluate(node.target), self.evaluate(node.index)
            if isinstance(target, Unknown) or isinstance(index, Unknown):
                return Unknown(f"{target}[{index}]")
            return target[index]
        name = node.name.lower()
        if name == "if":  # only the chosen branch is evaluated, as ARM does
            condition, when_true, when_false = node.args
            return self.evaluate(when_true if self.evaluate(condition) else when_false)
        args = [self.evaluate(arg) for arg in node.args]
        function = self._functions().get(name)
        if function is None:
            raise NotImplementedError(f"the test evaluator does not implement {node.name}()")
        if name not in _TAKES_UNKNOWN and any(isinstance(a, Unknown) for a in args):
            return Unknown(f"{node.name}({', '.join(map(str, args))})")
        return function(*args)

    def _functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "parameters": self.parameter,
            "variables": self.variable,
            "concat": _concat,
            "createarray": lambda *a: list(a),
            "createobject": lambda *a: dict(zip(a[::2], a[1::2], strict=True)),
            "equals": lambda a, b: a == b,
            "not": lambda a: not a,
            "and": lambda *a: all(a),
            "or": lambda *a: any(a),
            "true": lambda: True,
            "false": lambda: False,
            "empty": lambda a: len(a) == 0,
            "length": len,
            "string": _string,
            "int": int,
            "format": _format,
            "tolower": lambda a: a.lower(),
            "toupper": lambda a: a.upper(),
            "replace": lambda s, old, new: s.replace(old, new),
            "take": lambda a, n: a[:n],
            "split": lambda s, sep: s.split(sep),
            "uniquestring": lambda *a: hashlib.sha256("|".join(a).encode()).hexdigest()[:13],
            "guid": lambda *a: str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(str, a)))),
            "resourcegroup": self._resource_group,
            "subscription": lambda: {
                "id": f"/subscriptions/{SUBSCRIPTION_ID}",
                "subscriptionId": SUBSCRIPTION_ID,
            },
            "resourceid": self._resource_id_call,
            "subscriptionresourceid": self.subscription_resource_id,
            "reference": _reference,
            "copyindex": self._copy_index,
        }

    def _resource_group(self) -> dict[str, str]:
        if self.at_subscription:
            raise AssertionError("resourceGroup() is not available in a subscription deployment")
        return {
            "id": self.deployment_scope_id,
            "name": RESOURCE_GROUP,
            "location": "westeurope",
        }

    def _resource_id_call(self, *args: str) -> str:
        if "/" not in args[0]:
            raise NotImplementedError("resourceId() with explicit subscription/resource group")
        if self.at_subscription:
            return self.subscription_resource_id(*args)
        return self.resource_id(*args)

    def _copy_index(self) -> int:
        assert self.copy_index is not None, "copyIndex() outside a copy loop"
        return self.copy_index


_TAKES_UNKNOWN = {"createarray", "createobject", "concat", "format", "reference"}


def _provider_path(type_: str, names: tuple[str, ...]) -> str:
    namespace, *types = type_.split("/")
    assert len(types) == len(names), f"{type_} needs {len(types)} names, got {names}"
    return f"/providers/{namespace}" + "".join(
        f"/{t}/{n}" for t, n in zip(types, names, strict=True)
    )


def _member(target: Any, name: str) -> Any:
    if name in target:
        return target[name]
    matches = [key for key in target if key.lower() == name.lower()]
    assert matches, f"no property {name!r} in {target!r}"
    return target[matches[0]]


def _concat(*args: Any) -> Any:
    if any(isinstance(a, list) for a in args):
        assert all(isinstance(a, list) for a in args), "concat() mixes arrays and strings"
        return [item for a in args for item in a]
    text = "".join(str(a) for a in args)
    return Unknown(text) if any(isinstance(a, Unknown) for a in args) else text


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value if isinstance(value, str) else str(value)


def _format(template: str, *args: Any) -> Any:
    text = re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1))]), template)
    return Unknown(text) if any(isinstance(a, Unknown) for a in args) else text


def _reference(resource_id: str, *rest: Any) -> Unknown:
    full = ", 'full'" if "full" in (str(r).lower() for r in rest) else ""
    return Unknown(f"reference({resource_id}{full})")


def arm(template: dict[str, Any] | None = None, **overrides: Any) -> Arm:
    return Arm(template if template is not None else main_template(), overrides)


def app_settings(context: Arm) -> dict[str, Any]:
    site = context.resource("Microsoft.Web/sites")
    entries = context.resolve(site["properties"]["siteConfig"]["appSettings"])
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"app settings set twice: {names}"
    return {entry["name"]: entry["value"] for entry in entries}


def concrete_environment(settings: dict[str, Any]) -> dict[str, str]:
    """The app settings as the running app would see them (deployment-time values filled in)."""
    environment = {}
    for name, value in settings.items():
        text = value
        if isinstance(value, Unknown):
            if name.endswith("fullyQualifiedNamespace"):
                text = "sb-ops-status-test.servicebus.windows.net"
            elif name.endswith(("clientId", "CLIENT_ID")):
                text = "00000000-0000-0000-0000-0000000000c1"
            elif name == code.APPINSIGHTS_CONNECTION_STRING:
                text = APPINSIGHTS_CONNECTION_STRING_EXAMPLE
            elif name == code.APPINSIGHTS_AUTHENTICATION_STRING:
                text = "ClientId=00000000-0000-0000-0000-0000000000c1;Authorization=AAD"
            else:
                text = f"<{value.text}>"
        assert isinstance(text, str), f"app setting {name} is not a string: {value!r}"
        environment[name] = text
    return environment


IDENTITY_TYPES = ("SystemAssigned", "UserAssigned")
# What reference(...).ConnectionString of a component looks like (the portal's format).
APPINSIGHTS_CONNECTION_STRING_EXAMPLE = (
    "InstrumentationKey=00000000-0000-0000-0000-0000000000a1;"
    "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
    "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;"
    "ApplicationId=00000000-0000-0000-0000-0000000000a2"
)
QUEUES = ("intake", "polls")
QUEUE_PARAMETERS = {"intake": "intakeQueueName", "polls": "pollsQueueName"}
QUEUE_SETTINGS = {"intake": code.INTAKE_QUEUE, "polls": code.POLLS_QUEUE}


def code_setting_names() -> set[str]:
    """Every app setting ``load_settings`` reads, as the code publishes them."""
    return set(code.SETTINGS_WITH_DEFAULTS) | set(code.REQUIRED_SETTINGS)


def left_to_defaults() -> dict[str, str]:
    return load_json(LEFT_TO_DEFAULTS)["leftToDefault"]


def template_setting_names() -> set[str]:
    names: set[str] = set()
    for identity in IDENTITY_TYPES:
        names |= set(app_settings(arm(identityType=identity)))
    return names


def effective_setting(context: Arm, name: str) -> str:
    """What the app runs with: the template's value, else the code's default."""
    value = app_settings(context).get(name, code.SETTINGS_WITH_DEFAULTS[name])
    assert isinstance(value, str), f"{name} is only known at deployment: {value!r}"
    return value


def longest_scheduled_delay(policy: PollPolicy) -> float:
    """The longest delay the code can put on a rescheduled watch, from ``poll_delay`` itself:
    elapsed time past any bound, failures, an empty read budget, the largest jitter and a
    huge Retry-After."""
    return poll_delay(
        policy,
        elapsed=10 * policy.max_timeout,
        consecutive_failures=64,
        retry_after=1e9,
        remaining_reads=0,
        jitter=math.nextafter(1.0, 0.0),
    )


def queue(context: Arm, which: str) -> dict[str, Any]:
    """The intake or the polls queue, resolved."""
    name = context.parameter(QUEUE_PARAMETERS[which])
    (found,) = [
        resource
        for resource in context.resources("Microsoft.ServiceBus/namespaces/queues")
        if context.resolve(resource["name"]).split("/")[-1] == name
    ]
    return context.resolve(found)


def topic(context: Arm) -> dict[str, Any]:
    return context.resolve(context.resource("Microsoft.ServiceBus/namespaces/topics"))


def function_timeout() -> timedelta:
    return timespan(host_json()["functionTimeout"])


def lock_renewal() -> timedelta:
    return timespan(host_json()["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"])


def slowest_status_read() -> timedelta:
    """One ARM read at the code's HTTP timeouts (connect + read)."""
    return timedelta(
        seconds=float(code.SETTINGS_WITH_DEFAULTS[code.HTTP_CONNECT_TIMEOUT])
        + float(code.SETTINGS_WITH_DEFAULTS[code.HTTP_READ_TIMEOUT])
    )


def send_retry_waits(max_delivery_count: int, delay: float) -> list[float]:
    """What the handler waits before raising on a failed send, for deliveries 1..N:
    min(n x OPS_STATUS_SEND_RETRY_DELAY, MAX_SEND_RETRY_WAIT)."""
    return [min(n * delay, code.MAX_SEND_RETRY_WAIT) for n in range(1, max_delivery_count + 1)]


def send_retry_delay(context: Arm) -> float:
    return float(effective_setting(context, code.SEND_RETRY_DELAY))


def walk_properties(value: Any, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every (path, property name, value) of a JSON document; array items keep the name of
    the property that holds the array."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key, item
            yield from _walk_children(item, f"{path}.{key}", key)


def _walk_children(value: Any, path: str, key: str) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, dict):
        yield from walk_properties(value, path)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _walk_children(item, f"{path}[{number}]", key)


def resource_type_of(resource_id: str) -> str:
    """``Microsoft.X/a/b`` from ``/subscriptions/../providers/Microsoft.X/a/n1/b/n2``."""
    namespace, *rest = resource_id.rsplit("/providers/", 1)[1].split("/")
    return "/".join([namespace, *rest[0::2]])


def allows(permissions: tuple[list[str], list[str]], needed: set[str]) -> bool:
    actions, not_actions = permissions

    def matches(patterns: list[str], action: str) -> bool:
        return any(fnmatch.fnmatch(action.lower(), pattern.lower()) for pattern in patterns)

    return all(matches(actions, a) and not matches(not_actions, a) for a in needed)


def queue_triggers(source: str) -> dict[str, dict[str, Any]]:
    """Function name -> the keywords of its ``service_bus_queue_trigger`` decorator (v2 model).
    The name is ``@app.function_name(...)`` when given, else the Python function's name."""
    triggers = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        name, trigger = node.name, None
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
                continue
            if decorator.func.attr == "function_name":
                name = ast.literal_eval(
                    decorator.args[0] if decorator.args else decorator.keywords[0].value
                )
            elif decorator.func.attr.endswith("_trigger"):
                assert decorator.func.attr == "service_bus_queue_trigger", decorator.func.attr
                trigger = {
                    kw.arg: ast.literal_eval(kw.value)
                    for kw in decorator.keywords
                    if kw.arg in ("queue_name", "connection")
                }
        if trigger is not None:
            triggers[name] = trigger
    return triggers


def human_duration(delta: timedelta) -> str:
    """``1 hour``, ``10 minutes``, ``8 days``: how the docs write a window."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError(delta)


def test_helpers_read_resource_ids_triggers_and_durations() -> None:
    assert (
        resource_type_of("/subscriptions/s/resourceGroups/g/providers/Microsoft.A/b/n1/c/n2")
        == "Microsoft.A/b/c"
    )
    assert human_duration(timedelta(hours=1)) == "1 hour"
    assert human_duration(timedelta(minutes=10)) == "10 minutes"
    assert allows(
        (["Microsoft.Authorization/*"], []), {"Microsoft.Authorization/roleDefinitions/write"}
    )
    assert not allows(
        (["*"], ["Microsoft.Authorization/*/Write"]),
        {"Microsoft.Authorization/roleAssignments/write"},
    )


# -- the evaluator itself ---------------------------------------------------------------


def test_evaluator_parses_and_evaluates_arm_expressions() -> None:
    template = {
        "$schema": "deploymentTemplate.json#",
        "parameters": {"p": {"type": "int", "defaultValue": 3}},
        "variables": {"v": "[createObject('a', createArray(1, parameters('p')))]"},
        "resources": [],
    }
    context = arm(template)

    assert context.resolve("[variables('v').a[1]]") == 3
    assert context.resolve("[format('{0}-{1}', 'x', string(parameters('p')))]") == "x-3"
    assert context.resolve("[if(equals(1, 2), reference('nope').x, 'no')]") == "no"
    assert context.resolve("[reference('id', '2020-01-01', 'full').identity.principalId]") == (
        Unknown("reference(id, 'full').identity.principalId")
    )
    assert context.resolve("[['literal]") == "['literal]"
    for broken in ("[concat('a', 'b']", "[concat('a)]", "[concat('a' 'b')]", "[a.b]"):
        with pytest.raises(ArmSyntaxError):
            parse_expression(broken)


# -- JSON and ARM hygiene ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [MAIN_TEMPLATE, GRANT_TEMPLATE, EXAMPLE_PARAMETERS, LEFT_TO_DEFAULTS]
)
def test_infra_files_are_valid_json(name: str) -> None:
    assert isinstance(load_json(name), dict)


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_every_expression_parses_and_calls_only_arm_functions(name: str) -> None:
    template = load_json(name)
    for path, text in walk_strings(template):
        if not is_expression(text):
            continue
        assert text.endswith("]"), f"{path}: unterminated expression {text!r}"
        unknown = {
            call.name
            for call in calls(parse_expression(text))
            if call.name.lower() not in ARM_FUNCTIONS and not call.name.lower().startswith("list")
        }
        assert not unknown, f"{path}: not ARM template functions: {unknown}"


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_every_parameter_and_variable_reference_exists(name: str) -> None:
    template = load_json(name)

    assert referenced(template, "parameters") <= set(template.get("parameters", {}))
    assert referenced(template, "variables") <= set(template.get("variables", {}))


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_every_declared_parameter_and_variable_is_used(name: str) -> None:
    template = load_json(name)

    assert set(template.get("parameters", {})) == referenced(template, "parameters")
    assert set(template.get("variables", {})) == referenced(template, "variables")


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_every_resource_declares_a_literal_api_version(name: str) -> None:
    for resource in load_json(name)["resources"]:
        version = resource.get("apiVersion")
        assert isinstance(version, str), f"{resource['type']} has no apiVersion"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", version), (resource["type"], version)


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_every_resource_type_uses_the_newest_stable_api_version_checked(name: str) -> None:
    """Pinned on API_VERSIONS_CHECKED_ON: a downgrade, or a new type nobody looked up, fails."""
    used: dict[str, set[str]] = {}
    for resource in load_json(name)["resources"]:
        used.setdefault(resource["type"], set()).add(resource["apiVersion"])

    assert used == {type_: {version} for type_, version in EXPECTED_API_VERSIONS[name].items()}
    assert not any("preview" in version for versions in used.values() for version in versions)


def test_reference_calls_read_with_the_api_version_the_resource_is_deployed_with() -> None:
    context = arm()
    deployed = {
        resource["type"].lower(): resource["apiVersion"]
        for resource in main_template()["resources"]
    }
    checked = 0
    for path, node in expressions(main_template()):
        for call in calls(node):
            if call.name.lower() != "reference" or len(call.args) < 2:
                continue
            resource_id = context.evaluate(call.args[0])
            version = context.evaluate(call.args[1])
            type_ = resource_type_of(resource_id)
            assert version == deployed[type_.lower()], f"{path}: {type_} read with {version}"
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_templates_contain_no_blank_properties(name: str) -> None:
    """arm-ttk "Template Should Not Contain Blanks": no empty object, array, string or null,
    except under the property names arm-ttk exempts (defaultValue, properties, ...)."""
    blanks = [
        path
        for path, key, value in walk_properties(load_json(name))
        if value in ({}, [], "", None) and key not in ARM_TTK_MAY_BE_EMPTY
    ]

    assert not blanks


def test_blank_property_check_finds_what_arm_ttk_flags() -> None:
    template = {
        "parameters": {"p": {"type": "array", "defaultValue": []}},
        "resources": [{"properties": {"permissions": [{"actions": ["a"], "notActions": []}]}}],
    }

    flagged = [
        path
        for path, key, value in walk_properties(template)
        if value in ({}, [], "", None) and key not in ARM_TTK_MAY_BE_EMPTY
    ]
    assert flagged == ["$.resources[0].properties.permissions[0].notActions"]


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_templates_never_call_nondeterministic_functions(name: str) -> None:
    text = (INFRA / name).read_text().lower()

    assert "utcnow(" not in text
    assert "newguid(" not in text


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_depends_on_points_at_resources_of_the_same_template(name: str) -> None:
    context = arm(load_json(name), principalId="p") if name == GRANT_TEMPLATE else arm()
    # Copy loops (the pipeline role assignments) are extension resources nothing depends on.
    ids = {
        context.resource_id_of(r).lower() for r in context.template["resources"] if "copy" not in r
    }
    for resource in context.template["resources"]:
        for dependency in context.resolve(resource.get("dependsOn", [])):
            assert dependency.lower() in ids, f"{resource['type']} depends on unknown {dependency}"


def test_resource_names_are_deterministic_and_derive_from_parameters() -> None:
    def names(**overrides: Any) -> dict[str, str]:
        context = arm(**overrides)
        return {
            resource["type"]: context.resolve(resource["name"])
            for resource in context.template["resources"]
            if not resource["type"].startswith(
                ("Microsoft.Authorization/", "Microsoft.ServiceBus/namespaces/")
            )
        }

    first, again = names(), names()
    other = names(baseName="watcher", nameSuffix="abc123")

    assert first == again
    assert all(isinstance(n, str) for n in first.values()), first
    for type_ in (
        "Microsoft.ServiceBus/namespaces",
        "Microsoft.Web/sites",
        "Microsoft.Storage/storageAccounts",
    ):
        assert first[type_] != other[type_]
        assert "watcher" in other[type_]
        assert "abc123" in other[type_]


@pytest.mark.parametrize(
    ("base", "suffix"), [("ops-status", None), ("a" * 20, "b" * 13), ("abc", "xyz")]
)
def test_derived_names_satisfy_azure_naming_rules(base: str, suffix: str | None) -> None:
    overrides: dict[str, Any] = {"baseName": base}
    if suffix:
        overrides["nameSuffix"] = suffix
    context = arm(**overrides)

    storage = context.variable("storageAccountName")
    namespace = context.variable("serviceBusNamespaceName")
    app = context.variable("functionAppName")
    assert re.fullmatch(r"[a-z0-9]{3,24}", storage), storage
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]", namespace), namespace
    assert not namespace.endswith(("-sb", "-mgmt")), namespace
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,58}[a-z0-9]", app), app


def test_example_parameter_file_sets_declared_parameters_with_allowed_values() -> None:
    declared = main_template()["parameters"]
    given = load_json(EXAMPLE_PARAMETERS)["parameters"]

    assert set(given) <= set(declared)
    assert {"intakeQueueName", "pollsQueueName", "pipelinePrincipalIds"} <= set(given)
    types = {"int": int, "string": str, "bool": bool, "array": list, "object": dict}
    for name, entry in given.items():
        spec, value = declared[name], entry["value"]
        assert type(value) is types[spec["type"]], name
        assert value in spec.get("allowedValues", [value]), name
        if isinstance(value, int):
            assert spec.get("minValue", value) <= value <= spec.get("maxValue", value), name
    environment = concrete_environment(
        app_settings(arm(**{n: e["value"] for n, e in given.items()}))
    )
    code.load_settings(environment)


# -- consistency with the code ----------------------------------------------------------


def test_every_setting_the_code_reads_is_set_by_the_template_or_left_to_default_on_purpose() -> (
    None
):
    code_names = code_setting_names()
    set_by_template = template_setting_names() & code_names
    left = set(left_to_defaults())

    assert left <= set(code.SETTINGS_WITH_DEFAULTS), "only optional settings can be left out"
    assert not left & set_by_template, (
        f"set by the template AND listed as left out: {left & set_by_template}"
    )
    assert code_names == set_by_template | left, (
        f"neither set nor listed: {code_names - set_by_template - left}"
    )


def test_every_ops_status_and_service_bus_setting_the_template_sets_is_read() -> None:
    ours = {
        name
        for name in template_setting_names()
        if name.startswith(("OPS_STATUS_", code.SERVICE_BUS_CONNECTION))
    }

    assert ours <= code_setting_names() | TRIGGER_ONLY_SETTINGS, ours - code_setting_names()


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_template_defaults_equal_the_code_defaults(identity: str) -> None:
    settings = app_settings(arm(identityType=identity))
    for name, default in code.SETTINGS_WITH_DEFAULTS.items():
        if name not in settings:
            continue
        value = settings[name]
        if name == code.CLIENT_ID:
            assert isinstance(value, Unknown), "AZURE_CLIENT_ID must be the identity's client id"
            continue
        if name in (code.APPINSIGHTS_CONNECTION_STRING, code.APPINSIGHTS_AUTHENTICATION_STRING):
            # Export is off by default in the code and on in the template: its own component,
            # Entra only (test_application_insights_is_workspace_based_and_takes_only_entra_...).
            assert value, name
            continue
        assert value == default, f"{name}: template {value!r}, code default {default!r}"


def test_queue_and_topic_names_match_the_local_settings_sample() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    context = arm()
    settings = app_settings(context)

    assert settings[code.INTAKE_QUEUE] == sample[code.INTAKE_QUEUE] == "ops-status-intake"
    assert settings[code.POLLS_QUEUE] == sample[code.POLLS_QUEUE] == "ops-status-polls"
    assert settings[code.EVENTS_TOPIC] == sample[code.EVENTS_TOPIC] == "ops-status-events"
    for which in QUEUES:
        assert queue(context, which)["name"].endswith("/" + settings[QUEUE_SETTINGS[which]])
    assert topic(context)["name"].endswith("/" + settings[code.EVENTS_TOPIC])


def test_function_app_has_one_trigger_per_queue_on_the_template_connection() -> None:
    triggers = queue_triggers((ROOT / "function_app.py").read_text())
    settings = app_settings(arm())

    assert triggers == {
        "watch_intake": {
            "queue_name": f"%{code.INTAKE_QUEUE}%",
            "connection": code.SERVICE_BUS_CONNECTION,
        },
        "watch_polls": {
            "queue_name": f"%{code.POLLS_QUEUE}%",
            "connection": code.SERVICE_BUS_CONNECTION,
        },
    }
    assert f"{code.SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace" == code.SERVICE_BUS_NAMESPACE
    assert code.SERVICE_BUS_NAMESPACE in settings
    assert settings[f"{code.SERVICE_BUS_CONNECTION}__credential"] == "managedidentity"
    for setting in (code.INTAKE_QUEUE, code.POLLS_QUEUE):
        assert setting in settings


def test_trigger_reader_sees_names_queues_and_connections_of_a_v2_function_app() -> None:
    source = """
@app.function_name("first")
@app.service_bus_queue_trigger(arg_name="m", queue_name="%A%", connection="C")
def handler_one(m): ...

@app.service_bus_queue_trigger(arg_name="m", queue_name="%B%", connection="C")
def second(m): ...

@app.route(route="x")
def not_a_queue(req): ...
"""

    assert queue_triggers(source) == {
        "first": {"queue_name": "%A%", "connection": "C"},
        "second": {"queue_name": "%B%", "connection": "C"},
    }


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_app_starts_with_the_template_settings(identity: str) -> None:
    settings = code.load_settings(concrete_environment(app_settings(arm(identityType=identity))))

    assert settings.credential == "managedidentity"
    assert settings.service_bus_namespace == "sb-ops-status-test.servicebus.windows.net"
    assert settings.service_bus_connection_string is None
    assert settings.arm_endpoint == "https://management.azure.com"
    assert (settings.intake_queue, settings.polls_queue) == (
        "ops-status-intake",
        "ops-status-polls",
    )
    assert (settings.client_id is not None) == (identity == "UserAssigned")
    # Telemetry: the template's component, with a managed-identity token; no OTLP.
    assert settings.telemetry.appinsights_connection_string == APPINSIGHTS_CONNECTION_STRING_EXAMPLE
    assert settings.telemetry.appinsights_entra
    assert settings.telemetry.appinsights_client_id == settings.client_id
    assert settings.telemetry.otlp_endpoint is None


def test_the_python_worker_propagates_the_hosts_trace_context() -> None:
    # host.json switches the host to OpenTelemetry; PYTHON_ENABLE_OPENTELEMETRY makes the
    # Python worker attach each invocation's traceparent and leave the worker's logs to the
    # app's own exporter (no duplicates). Both belong together (Functions OpenTelemetry docs).
    host = load_json(ROOT / "host.json")

    assert host["telemetryMode"] == "OpenTelemetry"
    for identity in IDENTITY_TYPES:
        assert app_settings(arm(identityType=identity))["PYTHON_ENABLE_OPENTELEMETRY"] == "true"


def test_namespace_setting_comes_from_the_namespace_endpoint() -> None:
    context = arm()
    namespace_id = context.resource_id(
        "Microsoft.ServiceBus/namespaces", context.variable("serviceBusNamespaceName")
    )

    assert app_settings(context)[code.SERVICE_BUS_NAMESPACE] == Unknown(
        f"split(split(reference({namespace_id}).serviceBusEndpoint, /)[2], :)[0]"
    )


def test_user_assigned_identity_is_used_by_trigger_host_storage_app_and_telemetry() -> None:
    context = arm(identityType="UserAssigned")
    settings = app_settings(context)
    identity_id = context.resource_id(
        "Microsoft.ManagedIdentity/userAssignedIdentities", context.variable("identityName")
    )
    client_id = Unknown(f"reference({identity_id}).clientId")

    assert settings[code.CLIENT_ID] == client_id
    assert settings[f"{code.SERVICE_BUS_CONNECTION}__clientId"] == client_id
    assert settings["AzureWebJobsStorage__clientId"] == client_id
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == Unknown(
        f"ClientId={client_id};Authorization=AAD"
    )
    site = context.resolve(context.resource("Microsoft.Web/sites"))
    assert site["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}
    assert site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": identity_id,
    }
    assert context.deployed(context.resource("Microsoft.ManagedIdentity/userAssignedIdentities"))


def test_system_assigned_identity_sets_no_client_ids() -> None:
    context = arm()
    settings = app_settings(context)
    site = context.resolve(context.resource("Microsoft.Web/sites"))

    assert not {name for name in settings if name.endswith("clientId")} | (
        {code.CLIENT_ID} & set(settings)
    )
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    assert site["identity"] == {"type": "SystemAssigned"}
    assert site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"] == {
        "type": "SystemAssignedIdentity"
    }
    assert not context.deployed(
        context.resource("Microsoft.ManagedIdentity/userAssignedIdentities")
    )


def _setting_parameters() -> dict[str, str]:
    """Template parameter -> the app setting it feeds (for "[string(parameters('x'))]")."""
    mapping = {}
    for entry in main_template()["variables"]["appSettings"]:
        match = re.fullmatch(r"\[(?:string\()?parameters\('(\w+)'\)\)?\]", entry["value"])
        if match:
            mapping[match.group(1)] = entry["name"]
    return mapping


ORDERED_PAIRS = [
    ("defaultTimeoutSeconds", "maxTimeoutSeconds"),
    ("pollMinDelaySeconds", "pollMaxDelaySeconds"),
]
"""(lower, upper) parameters the code requires in order: load_settings rejects lower > upper."""


@pytest.mark.parametrize(
    "parameter",
    sorted(p for p in _setting_parameters() if "minValue" in main_template()["parameters"][p]),
)
def test_every_value_a_numeric_parameter_allows_is_accepted_by_load_settings(
    parameter: str,
) -> None:
    spec = main_template()["parameters"][parameter]
    for bound in (spec["minValue"], spec["maxValue"]):
        overrides = {parameter: bound}
        for lower, upper in ORDERED_PAIRS:
            if parameter == lower:
                overrides[upper] = max(bound, arm().parameter(upper))
            elif parameter == upper:
                overrides[lower] = min(bound, arm().parameter(lower))
        environment = concrete_environment(app_settings(arm(**overrides)))

        code.load_settings(environment)  # raises ConfigurationError if out of range


def test_connection_string_forms_are_never_set() -> None:
    names = template_setting_names()
    unset = load_json(LEFT_TO_DEFAULTS)["deliberatelyUnset"]

    assert code.SERVICE_BUS_CONNECTION in unset
    assert not names & set(unset)
    assert "AzureWebJobsStorage" not in names


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_host_storage_uses_the_account_endpoints_not_the_account_name(identity: str) -> None:
    """``AzureWebJobsStorage__accountName`` infers *.core.windows.net: not valid in sovereign
    clouds or with custom DNS (Functions docs), which this template's armEndpoint offers."""
    context = arm(identityType=identity)
    settings = app_settings(context)
    storage_id = context.resource_id_of(context.resource("Microsoft.Storage/storageAccounts"))

    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == Unknown(
            f"reference({storage_id}).primaryEndpoints.{service}"
        )
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert not {name for name in settings if name.startswith("AzureWebJobsStorage__")} - {
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
    }
    assert "AzureWebJobsStorage__accountName" not in settings


def test_no_app_setting_that_flex_consumption_rejects() -> None:
    assert not template_setting_names() & FLEX_REJECTED_SETTINGS


# -- Service Bus ------------------------------------------------------------------------


@pytest.mark.parametrize(("sku", "tier"), [(None, "Standard"), ("Premium", "Premium")])
def test_namespace_accepts_only_entra_id_over_tls_1_2(sku: str | None, tier: str) -> None:
    context = arm(serviceBusSku=sku) if sku else arm()
    namespace = context.resolve(context.resource("Microsoft.ServiceBus/namespaces"))

    assert namespace["sku"]["name"] == namespace["sku"]["tier"] == tier
    assert ("capacity" in namespace["sku"]) == (tier == "Premium")
    assert namespace["properties"]["disableLocalAuth"] is True
    assert namespace["properties"]["minimumTlsVersion"] == "1.2"
    assert not arm().resources("Microsoft.ServiceBus/namespaces/AuthorizationRules")


def test_template_deploys_a_separate_intake_and_polls_queue() -> None:
    context = arm()
    names = [
        context.resolve(q["name"]).split("/")[-1]
        for q in context.resources("Microsoft.ServiceBus/namespaces/queues")
    ]

    assert sorted(names) == ["ops-status-intake", "ops-status-polls"]
    assert [queue(arm(intakeQueueName="a", pollsQueueName="b"), w)["name"] for w in QUEUES] == [
        f"{context.variable('serviceBusNamespaceName')}/a",
        f"{context.variable('serviceBusNamespaceName')}/b",
    ]


@pytest.mark.parametrize("which", QUEUES)
def test_queues_deduplicate_and_dead_letter_after_ten_deliveries(which: str) -> None:
    properties = queue(arm(), which)["properties"]

    assert properties["requiresDuplicateDetection"] is True
    assert properties["maxDeliveryCount"] == 10
    assert properties["deadLetteringOnMessageExpiration"] is True
    assert properties["requiresSession"] is False
    assert iso_duration(properties["duplicateDetectionHistoryTimeWindow"]) == timedelta(hours=1)


@pytest.mark.parametrize("which", QUEUES)
def test_lock_duration_covers_a_status_read_and_renewal_covers_a_whole_run(which: str) -> None:
    lock = iso_duration(queue(arm(), which)["properties"]["lockDuration"])

    assert lock == timedelta(minutes=1)
    assert timedelta(seconds=30) <= lock <= SERVICE_BUS_MAX_LOCK
    assert lock >= slowest_status_read(), "a normal step should not depend on lock renewal"
    assert lock <= lock_renewal()
    assert lock_renewal() >= function_timeout(), "the host must hold the lock for a whole run"


@pytest.mark.parametrize("source", QUEUES)
def test_polls_duplicate_detection_outlasts_a_redelivery_after_a_crash(source: str) -> None:
    """Steps of both queues send their follow-up to the polls queue."""
    context = arm()
    window = iso_duration(
        queue(context, "polls")["properties"]["duplicateDetectionHistoryTimeWindow"]
    )
    properties = queue(context, source)["properties"]
    lock = iso_duration(properties["lockDuration"])
    held = max(function_timeout(), lock_renewal())
    # First send .. lock lost .. redelivery .. the redelivered step sends the same MessageId.
    one_crash = held + lock + function_timeout()
    every_delivery_crashes = (properties["maxDeliveryCount"] - 1) * (
        held + lock
    ) + function_timeout()

    assert SERVICE_BUS_MIN_WINDOW <= window <= SERVICE_BUS_MAX_WINDOW
    assert window >= function_timeout() + lock
    assert window >= one_crash + BACKLOG_MARGIN
    assert window >= every_delivery_crashes


def test_topic_duplicate_detection_outlasts_the_longest_scheduled_delay() -> None:
    properties = topic(arm())["properties"]
    window = iso_duration(properties["duplicateDetectionHistoryTimeWindow"])
    upper = main_template()["parameters"]["pollMaxDelaySeconds"]["maxValue"]
    environment = concrete_environment(app_settings(arm(pollMaxDelaySeconds=upper)))
    policy = code.load_settings(environment).policy
    # A redelivered step and the next scheduled step may both publish {watch}.final.
    race = timedelta(seconds=longest_scheduled_delay(policy)) + function_timeout()

    assert properties["requiresDuplicateDetection"] is True
    assert SERVICE_BUS_MIN_WINDOW <= window <= SERVICE_BUS_MAX_WINDOW
    assert window >= race + TOPIC_BACKLOG_MARGIN


@pytest.mark.parametrize("source", QUEUES)
@pytest.mark.parametrize("destination", ["intake", "polls", "topic"])
def test_duplicate_windows_exceed_lock_times_deliveries_plus_in_handler_back_off(
    source: str, destination: str
) -> None:
    """A send the broker took but the client saw fail is repeated by a later delivery of the
    source message: the destination must still remember its MessageId. (The intake queue is
    nobody's destination in the product, but pipelines retry the same way.)"""
    context = arm()
    properties = queue(context, source)["properties"]
    lock = iso_duration(properties["lockDuration"])
    deliveries = properties["maxDeliveryCount"]
    target = topic(context) if destination == "topic" else queue(context, destination)
    window = iso_duration(target["properties"]["duplicateDetectionHistoryTimeWindow"])
    back_off = timedelta(seconds=sum(send_retry_waits(deliveries, send_retry_delay(context))))
    any_accepted_delay = deliveries * (lock + timedelta(seconds=code.MAX_SEND_RETRY_WAIT))

    assert window >= lock * deliveries + back_off
    assert window >= any_accepted_delay, "holds whatever OPS_STATUS_SEND_RETRY_DELAY is"


@pytest.mark.parametrize("which", QUEUES)
def test_failed_sends_spread_ten_deliveries_over_ten_minutes_before_dead_lettering(
    which: str,
) -> None:
    context = arm()
    deliveries = queue(context, which)["properties"]["maxDeliveryCount"]
    delay = send_retry_delay(context)
    waits = send_retry_waits(deliveries, delay)
    last_delivery_starts = sum(waits[:-1])
    dead_letters_at = sum(waits)

    assert delay == code.DEFAULT_SEND_RETRY_DELAY, "the arithmetic below is written for it"
    assert last_delivery_starts >= 600, "a Service Bus outage of under 10 min must not dead-letter"
    assert (last_delivery_starts, dead_letters_at) == (675, 825)
    for text in (
        main_template()["metadata"]["decisions"]["redelivery"],
        (ROOT / "docs" / "deployment.md").read_text(),
    ):
        assert f"= {last_delivery_starts:g} s" in text
        assert f"{last_delivery_starts:g} + {waits[-1]:g} = {dead_letters_at:g} s" in text


@pytest.mark.parametrize("which", QUEUES)
def test_every_send_retry_wait_plus_a_status_read_fits_in_one_run(which: str) -> None:
    context = arm()
    deliveries = queue(context, which)["properties"]["maxDeliveryCount"]
    waits = send_retry_waits(deliveries, send_retry_delay(context))
    run = min(function_timeout(), lock_renewal())

    assert max(waits) <= code.MAX_SEND_RETRY_WAIT
    for wait in waits:
        assert timedelta(seconds=wait) + slowest_status_read() <= run
    assert timedelta(seconds=code.MAX_SEND_RETRY_WAIT) + slowest_status_read() <= run


def test_poll_message_ttl_outlasts_the_longest_watch() -> None:
    ttl = iso_duration(queue(arm(), "polls")["properties"]["defaultMessageTimeToLive"])
    retry_after_max = float(app_settings(arm())[code.RETRY_AFTER_MAX])
    longest_allowed = main_template()["parameters"]["maxTimeoutSeconds"]["maxValue"]

    assert ttl >= timedelta(
        seconds=float(code.SETTINGS_WITH_DEFAULTS[code.MAX_TIMEOUT]) + PollPolicy().retry_after_max
    )
    assert ttl >= timedelta(seconds=longest_allowed + retry_after_max)


def test_example_subscriptions_split_events_by_the_status_the_code_emits() -> None:
    context = arm()
    schema = json.loads((ROOT / "schemas" / "event.schema.json").read_text())["$defs"]
    emitted = {status.value for status in FinalStatus} | {
        schema["rejection"]["properties"]["status"]["const"]
    }
    rules = {
        context.resolve(r["name"]).split("/")[2]: context.resolve(r["properties"])
        for r in context.resources("Microsoft.ServiceBus/namespaces/topics/subscriptions/rules")
    }
    (sql,) = re.findall(r"^status IN \((.*)\)$", rules["failed"]["sqlFilter"]["sqlExpression"])

    assert set(schema["terminal"]["properties"]["status"]["enum"]) <= emitted
    assert rules["succeeded"]["correlationFilter"]["properties"] == {
        "status": FinalStatus.SUCCEEDED.value
    }
    assert set(re.findall(r"'([^']*)'", sql)) == emitted - {FinalStatus.SUCCEEDED.value}


def test_every_subscription_has_exactly_one_rule_and_it_replaces_default() -> None:
    """A rule named $Default replaces the catch-all TrueFilter Service Bus creates with the
    subscription, whether or not that rule would otherwise survive beside the template's
    (terraform-provider-azurerm#20718 vs pulumi-azure-native#4489)."""
    context = arm()
    subscriptions = {
        context.resolve(s["name"])
        for s in context.resources("Microsoft.ServiceBus/namespaces/topics/subscriptions")
    }
    rules: dict[str, list[str]] = {}
    for rule in context.resources("Microsoft.ServiceBus/namespaces/topics/subscriptions/rules"):
        parent, _, name = context.resolve(rule["name"]).rpartition("/")
        rules.setdefault(parent, []).append(name)
        assert context.resolve(rule["condition"]) == context.resolve(
            next(
                s["condition"]
                for s in context.resources("Microsoft.ServiceBus/namespaces/topics/subscriptions")
                if context.resolve(s["name"]) == parent
            )
        )

    assert len(subscriptions) == 2
    assert rules == {subscription: ["$Default"] for subscription in subscriptions}


def test_example_subscriptions_can_be_left_out() -> None:
    without = arm(createExampleSubscriptions=False)
    examples = [
        *without.resources("Microsoft.ServiceBus/namespaces/topics/subscriptions"),
        *without.resources("Microsoft.ServiceBus/namespaces/topics/subscriptions/rules"),
    ]

    assert len(examples) == 4
    assert not any(without.deployed(resource) for resource in examples)
    assert all(arm().deployed(resource) for resource in examples)


# -- function app -----------------------------------------------------------------------


def test_function_app_runs_python_3_11_on_flex_consumption() -> None:
    context = arm()
    plan = context.resolve(context.resource("Microsoft.Web/serverfarms"))
    site = context.resolve(context.resource("Microsoft.Web/sites"))
    config = site["properties"]["functionAppConfig"]

    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    assert site["kind"] == "functionapp,linux"
    assert site["properties"]["serverFarmId"] == context.resource_id_of(
        context.resource("Microsoft.Web/serverfarms")
    )
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert site["properties"]["httpsOnly"] is True


def test_function_app_is_created_after_both_queues_and_the_topic() -> None:
    context = arm()
    site = context.resource("Microsoft.Web/sites")
    dependencies = set(context.resolve(site["dependsOn"]))
    entities = {
        context.resource_id_of(r)
        for r in context.resources("Microsoft.ServiceBus/namespaces/queues")
        + context.resources("Microsoft.ServiceBus/namespaces/topics")
    }

    assert len(entities) == 3
    assert entities <= dependencies


def test_deployment_package_lives_in_a_container_of_the_host_storage_account() -> None:
    context = arm()
    site = context.resolve(context.resource("Microsoft.Web/sites"))
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    container = context.resolve(
        context.resource("Microsoft.Storage/storageAccounts/blobServices/containers")
    )
    storage_id = context.resource_id_of(context.resource("Microsoft.Storage/storageAccounts"))
    blob_endpoint = f"reference({storage_id}).primaryEndpoints.blob"

    assert storage["type"] == "blobContainer"
    assert storage["value"] == Unknown(blob_endpoint + container["name"].split("/")[-1])
    assert app_settings(context)["AzureWebJobsStorage__blobServiceUri"] == Unknown(blob_endpoint)


def test_storage_account_refuses_shared_keys_and_public_blobs() -> None:
    properties = arm().resolve(arm().resource("Microsoft.Storage/storageAccounts"))["properties"]

    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_application_insights_is_workspace_based_and_takes_only_entra_telemetry() -> None:
    context = arm()
    component = context.resolve(context.resource("Microsoft.Insights/components"))
    workspace_id = context.resource_id_of(
        context.resource("Microsoft.OperationalInsights/workspaces")
    )
    settings = app_settings(context)

    assert component["properties"]["WorkspaceResourceId"] == workspace_id
    assert component["properties"]["DisableLocalAuth"] is True
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == Unknown(
        f"reference({context.resource_id_of(context.resource('Microsoft.Insights/components'))}).ConnectionString"
    )
    assert "APPINSIGHTS_INSTRUMENTATIONKEY" not in template_setting_names()


# -- role assignments -------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One role assignment as ARM would create it (copy loops expanded)."""

    name: str
    role: str
    scope: str
    principal_id: Any
    principal_type: str
    depends_on: tuple[str, ...]
    from_copy_loop: bool


def _role_assignments(context: Arm) -> list[dict[str, Any]]:
    return context.resources("Microsoft.Authorization/roleAssignments")


def _role_guid(role_definition_id: str) -> str:
    return role_definition_id.rsplit("/", 1)[-1]


def role_grants(context: Arm) -> list[Grant]:
    grants = []
    for resource in _role_assignments(context):
        loop = resource.get("copy")
        indexes: list[int | None] = list(range(context.resolve(loop["count"]))) if loop else [None]
        for index in indexes:
            context.copy_index = index
            if not context.deployed(resource):
                continue
            properties = context.resolve(resource["properties"])
            grants.append(
                Grant(
                    name=context.resolve(resource["name"]),
                    role=_role_guid(properties["roleDefinitionId"]),
                    scope=context.scope_id(resource),
                    principal_id=properties["principalId"],
                    principal_type=properties["principalType"],
                    depends_on=tuple(context.resolve(resource.get("dependsOn", []))),
                    from_copy_loop=loop is not None,
                )
            )
    context.copy_index = None
    return grants


def can(grants: list[Grant], principal: Any, roles: set[str], resource_id: str) -> bool:
    """Whether ``principal`` holds one of ``roles`` at ``resource_id`` or any scope above it."""
    target = resource_id.lower()
    return any(
        grant.principal_id == principal
        and grant.role in roles
        and (target == grant.scope.lower() or target.startswith(grant.scope.lower() + "/"))
        for grant in grants
    )


def app_principal(context: Arm) -> Unknown:
    if context.parameter("identityType") == "UserAssigned":
        source = context.resource_id(
            "Microsoft.ManagedIdentity/userAssignedIdentities", context.variable("identityName")
        )
        return Unknown(f"reference({source}).principalId")
    source = context.resource_id("Microsoft.Web/sites", context.variable("functionAppName"))
    return Unknown(f"reference({source}, 'full').identity.principalId")


def entity_ids(context: Arm) -> dict[str, str]:
    namespace = context.variable("serviceBusNamespaceName")
    queues = "Microsoft.ServiceBus/namespaces/queues"
    return {
        "namespace": context.resource_id("Microsoft.ServiceBus/namespaces", namespace),
        "intake": context.resource_id(queues, namespace, context.parameter("intakeQueueName")),
        "polls": context.resource_id(queues, namespace, context.parameter("pollsQueueName")),
        "topic": context.resource_id(
            "Microsoft.ServiceBus/namespaces/topics",
            namespace,
            context.parameter("eventsTopicName"),
        ),
    }


PIPELINES = ["bbbbbbbb-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"]
SENDS = {SERVICE_BUS_DATA_SENDER, SERVICE_BUS_DATA_OWNER}
RECEIVES = {SERVICE_BUS_DATA_RECEIVER, SERVICE_BUS_DATA_OWNER}


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_role_assignments_grant_exactly_the_needed_roles_at_entity_scope(identity: str) -> None:
    context = arm(identityType=identity)
    entities = entity_ids(context)
    storage = context.resource_id(
        "Microsoft.Storage/storageAccounts", context.variable("storageAccountName")
    )
    insights = context.resource_id(
        "Microsoft.Insights/components", context.variable("appInsightsName")
    )

    granted = {(grant.role, grant.scope) for grant in role_grants(context)}

    assert granted == {
        (SERVICE_BUS_DATA_RECEIVER, entities["intake"]),
        (SERVICE_BUS_DATA_RECEIVER, entities["polls"]),
        (SERVICE_BUS_DATA_SENDER, entities["polls"]),
        (SERVICE_BUS_DATA_SENDER, entities["topic"]),
        (STORAGE_BLOB_DATA_OWNER, storage),
        (STORAGE_TABLE_DATA_CONTRIBUTOR, storage),
        (MONITORING_METRICS_PUBLISHER, insights),
    }
    assert len(role_grants(context)) == len(granted)
    for resource in _role_assignments(context):
        if "ServiceBus" in resource["scope"]:
            assert re.search(r"/(queues|topics)/\{1\}'", resource["scope"]), resource["scope"]


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_the_app_may_send_only_to_the_polls_queue_and_the_topic(identity: str) -> None:
    context = arm(identityType=identity, pipelinePrincipalIds=PIPELINES)
    grants = role_grants(context)
    entities = entity_ids(context)
    app = app_principal(context)

    assert not can(grants, app, SENDS, entities["intake"]), "the app never sends to intake"
    assert can(grants, app, SENDS, entities["polls"])
    assert can(grants, app, SENDS, entities["topic"])
    assert can(grants, app, RECEIVES, entities["intake"])
    assert can(grants, app, RECEIVES, entities["polls"])
    assert not can(grants, app, RECEIVES, entities["topic"])


@pytest.mark.parametrize("principal_type", ["ServicePrincipal", "Group"])
def test_pipeline_principals_can_submit_and_listen_but_never_reach_the_polls_queue(
    principal_type: str,
) -> None:
    context = arm(pipelinePrincipalIds=PIPELINES, pipelinePrincipalType=principal_type)
    grants = role_grants(context)
    entities = entity_ids(context)
    subscription_of_topic = f"{entities['topic']}/subscriptions/failed"

    for pipeline in PIPELINES:
        mine = [grant for grant in grants if grant.principal_id == pipeline]
        assert {(grant.role, grant.scope) for grant in mine} == {
            (SERVICE_BUS_DATA_SENDER, entities["intake"]),
            (SERVICE_BUS_DATA_RECEIVER, entities["topic"]),
        }
        assert all(grant.principal_type == principal_type for grant in mine)
        assert all(grant.scope in grant.depends_on for grant in mine)
        assert not any(
            grant.scope.lower() in (entities["polls"].lower(), entities["namespace"].lower())
            or entities["polls"].lower().startswith(grant.scope.lower() + "/")
            for grant in mine
        )
        assert can(grants, pipeline, SENDS, entities["intake"])
        assert can(grants, pipeline, RECEIVES, subscription_of_topic)
        assert not can(grants, pipeline, SENDS | RECEIVES, entities["polls"])
        assert not can(grants, pipeline, SENDS, entities["topic"])
        assert not can(grants, pipeline, RECEIVES, entities["intake"])


def test_no_pipeline_role_assignment_without_pipeline_principals() -> None:
    context = arm()

    assert context.parameter("pipelinePrincipalIds") == []
    assert not [grant for grant in role_grants(context) if grant.from_copy_loop]
    assert sum(1 for r in _role_assignments(context) if "copy" in r) == 2


def test_rbac_reachability_check_sees_grants_at_a_parent_scope() -> None:
    namespace = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ServiceBus/namespaces/n"
    at_namespace = Grant("x", SERVICE_BUS_DATA_SENDER, namespace, "p", "User", (), False)

    assert can([at_namespace], "p", SENDS, f"{namespace}/queues/polls")
    assert not can([at_namespace], "p", SENDS, f"{namespace}2/queues/polls")
    assert not can([at_namespace], "q", SENDS, f"{namespace}/queues/polls")


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_role_assignment_names_are_the_guid_of_scope_principal_and_role(identity: str) -> None:
    context = arm(identityType=identity, pipelinePrincipalIds=PIPELINES)
    app = app_principal(context)
    principal_resource = context.variable("principalResourceId")
    grants = role_grants(context)
    for grant in grants:
        key = principal_resource if grant.principal_id == app else grant.principal_id
        assert grant.name == str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{grant.scope}|{key}|{grant.role}")
        )
    assert len({grant.name for grant in grants}) == len(grants) == 7 + 2 * len(PIPELINES)


@pytest.mark.parametrize("identity", IDENTITY_TYPES)
def test_role_assignments_go_to_the_app_identity_after_their_scope_exists(identity: str) -> None:
    context = arm(identityType=identity, pipelinePrincipalIds=PIPELINES)
    principal = app_principal(context)
    source = (
        context.resource_id(
            "Microsoft.ManagedIdentity/userAssignedIdentities", context.variable("identityName")
        )
        if identity == "UserAssigned"
        else context.resource_id("Microsoft.Web/sites", context.variable("functionAppName"))
    )

    app_grants = [grant for grant in role_grants(context) if not grant.from_copy_loop]
    assert len(app_grants) == 7
    for grant in app_grants:
        assert grant.principal_id == principal
        assert grant.principal_type == "ServicePrincipal"
        assert {grant.scope, source} <= set(grant.depends_on)
    assert context.resolve(main_template()["outputs"]["principalId"]["value"]) == principal


@pytest.mark.parametrize("name", [MAIN_TEMPLATE, GRANT_TEMPLATE])
def test_no_owner_contributor_or_service_bus_data_owner_anywhere(name: str) -> None:
    text = (INFRA / name).read_text().lower()

    for role, title in FORBIDDEN_ROLES.items():
        assert role not in text, f"{name} grants {title}"
    assert "listkeys(" not in text, "no keys are read: every connection is identity-based"


@pytest.mark.parametrize("access", ["OperationStatusReader", "Reader"])
def test_grant_reader_assigns_reader_or_a_role_that_only_reads_operation_status(
    access: str,
) -> None:
    context = arm(grant_template(), principalId="principal-1", accessLevel=access)
    (definition,) = context.resources("Microsoft.Authorization/roleDefinitions")
    (assignment,) = _role_assignments(context)
    properties = context.resolve(assignment["properties"])

    assert "scope" not in assignment, "assigned at the deployment's subscription"
    assert properties["principalId"] == "principal-1"
    assert properties["principalType"] == "ServicePrincipal"
    assert context.resolve(assignment["name"]) == str(
        uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"/subscriptions/{SUBSCRIPTION_ID}|principal-1|{properties['roleDefinitionId']}",
        )
    )
    if access == "Reader":
        assert not context.deployed(definition)
        assert _role_guid(properties["roleDefinitionId"]) == READER
    else:
        role = context.resolve(definition)
        assert context.deployed(definition)
        assert properties["roleDefinitionId"] == context.resource_id_of(definition)
        assert role["properties"]["permissions"] == [
            {"actions": ["Microsoft.Cache/locations/operationsStatus/read"]}
        ]
        assert role["properties"]["assignableScopes"] == [f"/subscriptions/{SUBSCRIPTION_ID}"]
        assert SUBSCRIPTION_ID in role["properties"]["roleName"], "role names are unique per tenant"


@pytest.mark.parametrize("access", ["OperationStatusReader", "Reader"])
def test_grant_reader_names_exactly_the_built_in_roles_that_can_deploy_it(access: str) -> None:
    """Each deployed resource needs <type>/write; a role suffices if its actions (minus
    notActions) cover every one. The metadata's first sentence for the variant must name
    exactly those roles, and the free-text description none."""
    context = arm(grant_template(), principalId="p", accessLevel=access)
    needed = {
        f"{resource['type']}/write"
        for resource in grant_template()["resources"]
        if context.deployed(resource)
    }
    sufficient = {
        title for title, permissions in DEPLOYER_ROLES.items() if allows(permissions, needed)
    }
    metadata = grant_template()["metadata"]
    first_sentence = metadata["requiredPermissions"][access].split(". ")[0]

    assert set(metadata["requiredPermissions"]) == set(
        grant_template()["parameters"]["accessLevel"]["allowedValues"]
    )
    assert {title for title in DEPLOYER_ROLES if title in first_sentence} == sufficient
    assert not [title for title in DEPLOYER_ROLES if title in metadata["description"]]
    if access == "OperationStatusReader":
        assert sufficient == {"Owner", "User Access Administrator"}
    else:
        assert "Role Based Access Control Administrator" in sufficient


# -- outputs ----------------------------------------------------------------------------


def test_outputs_give_the_runbook_everything_it_needs() -> None:
    context = arm()
    outputs = main_template()["outputs"]

    assert {
        "serviceBusNamespaceName",
        "serviceBusFullyQualifiedNamespace",
        "intakeQueueName",
        "pollsQueueName",
        "intakeQueueResourceId",
        "eventsTopicName",
        "eventsTopicResourceId",
        "functionAppName",
        "principalId",
    } <= set(outputs)
    assert (
        context.resolve(outputs["intakeQueueResourceId"]["value"]) == entity_ids(context)["intake"]
    )
    assert (
        context.resolve(outputs["eventsTopicResourceId"]["value"]) == entity_ids(context)["topic"]
    )


def test_grant_commands_are_listed_for_every_watched_subscription() -> None:
    watched = ["aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"]
    context = arm(watchedSubscriptionIds=watched)
    loop = main_template()["outputs"]["grantReadAccessCommands"]["copy"]
    count = context.resolve(loop["count"])
    commands = []
    for number in range(count):
        context.copy_index = number
        commands.append(context.resolve(loop["input"]))

    assert count == len(watched)
    for subscription, command in zip(watched, commands, strict=True):
        assert f"--subscription {subscription}" in str(command)
        assert "--template-file infra/grant-reader.json" in str(command)
        assert "principalId=reference(" in str(command)
    assert arm().resolve(loop["count"]) == 0


# -- documents that state the template's numbers ----------------------------------------


def test_reliability_doc_states_the_template_duplicate_detection_window() -> None:
    window = iso_duration(
        queue(arm(), "polls")["properties"]["duplicateDetectionHistoryTimeWindow"]
    )
    text = " ".join((ROOT / "docs" / "reliability.md").read_text().split())
    sentences = [
        s for s in re.split(r"(?<=[.!?])\s+", text) if "template" in s and "window" in s.lower()
    ]

    assert sentences, "docs/reliability.md no longer says what the template's window is"
    for sentence in sentences:
        assert human_duration(window) in sentence, sentence


def test_deployment_doc_states_every_lock_window_and_ttl_the_template_sets() -> None:
    context = arm()
    doc = (ROOT / "docs" / "deployment.md").read_text()
    entities = [queue(context, which) for which in QUEUES] + [topic(context)]
    for entity in entities:
        for key in (
            "lockDuration",
            "duplicateDetectionHistoryTimeWindow",
            "defaultMessageTimeToLive",
        ):
            if key in entity["properties"]:
                assert f"`{entity['properties'][key]}`" in doc, (entity["name"], key)
    assert f"`{API_VERSIONS_CHECKED_ON}`" in doc or API_VERSIONS_CHECKED_ON in doc
    for versions in EXPECTED_API_VERSIONS.values():
        for type_, version in versions.items():
            assert f"`{type_}`" in doc, type_
            assert version in doc, type_
