"""Azure Resource Manager async-operation status, simulated on loopback.

Tests script what each operation answers poll by poll (``Step``), and ``ArmSimulator``
answers with ARM-shaped bodies and headers, applies ARM's front-door checks (bearer token,
api-version, read throttling) and records every request so tests can assert on what the
product sent. Modules, by what they hold:

- ``script``: ``Step``, the JSON script format and ``load_scripts``;
- ``playback``: an operation's place in its script and the body a step answers with;
- ``bucket``: ARM's per-subscription read throttle (the token bucket);
- ``wire``: ARM's error envelope, timestamps, content type, api-version and bearer checks;
- ``server``: ``ArmSimulator``, its request handler and the recorded requests;
- ``loopback``: the threaded-HTTP scaffolding shared with ``emulators.identity``;
- ``__main__``: the CLI, ``python -m emulators.arm --help``.

Standard library only: it must run anywhere the tests run. Never deployed.
"""

from __future__ import annotations

from .loopback import Headers, LoopbackServer, QuietHandler
from .script import Step, default_failure_error, load_scripts
from .server import (
    DEFAULT_API_VERSION,
    DEFAULT_LOCATION,
    DEFAULT_PROVIDER,
    DEFAULT_SUBSCRIPTION_ID,
    SIM_TENANT_ID,
    ArmSimulator,
    RecordedRequest,
)
from .wire import arm_error, arm_timestamp, new_guid

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_LOCATION",
    "DEFAULT_PROVIDER",
    "DEFAULT_SUBSCRIPTION_ID",
    "SIM_TENANT_ID",
    "ArmSimulator",
    "Headers",
    "LoopbackServer",
    "QuietHandler",
    "RecordedRequest",
    "Step",
    "arm_error",
    "arm_timestamp",
    "default_failure_error",
    "load_scripts",
    "new_guid",
]
