"""Settings of the chaos and window runs, and what each scripted outcome should produce."""

from __future__ import annotations

from pathlib import Path

from emulators.stack import EVENTS_TOPIC, POLLS_QUEUE

ROOT = Path(__file__).resolve().parents[2]

LOCK_DURATION = 3.0
MAX_DELIVERY_COUNT = 10
#: The deployment template's duplicate-detection window (PT1H, infra/azuredeploy.json).
DEPLOYED_WINDOW = 3600.0
READ_TIMEOUT = 2.0
CONNECT_TIMEOUT = 3.0
WATCH_TIMEOUT = 8.0
#: Seconds of refused sends in a long refusal: longer than the SDK's retries.
LONG_REFUSAL = 8.0
# How late the sampler may notice a newly scheduled poll (its period plus a busy machine).
SAMPLER_SLACK = 1.0
SETTINGS = {
    "OPS_STATUS_POLL_MIN_DELAY": "1",
    "OPS_STATUS_POLL_MAX_DELAY": "2",
    "OPS_STATUS_POLL_GROWTH": "0.5",
    "OPS_STATUS_RETRY_AFTER_MAX": "2",
    "OPS_STATUS_HTTP_READ_TIMEOUT": f"{READ_TIMEOUT:g}",
    "OPS_STATUS_HTTP_CONNECT_TIMEOUT": f"{CONNECT_TIMEOUT:g}",
    # A failed send holds delivery n for n x 1 s (15 s in production) before the abandon.
    "OPS_STATUS_SEND_RETRY_DELAY": "1",
}
OUTCOMES = ("succeed", "fail", "cancel", "timeout", "invalid")
EXPECTED_TYPE = {
    "succeed": "OpsStatus.Operation.Succeeded",
    "fail": "OpsStatus.Operation.Failed",
    "cancel": "OpsStatus.Operation.Canceled",
    "timeout": "OpsStatus.Operation.TimedOut",
    "invalid": "OpsStatus.Watch.Rejected",
}
ARM_ERROR = {
    "code": "ResourceOperationFailure",
    "message": "The resource operation completed with terminal provisioning state 'Failed'.",
    "details": [{"code": "CapacityNotAvailable", "message": "No capacity in westus."}],
    "additionalInfo": [{"type": "PolicyViolation", "info": {"policy": "chaos"}}],
}
#: The two entities the product sends to, as the tables name them.
ENTITIES = {"polls": POLLS_QUEUE, "topic": EVENTS_TOPIC}


#: Lock duration of the window run: the redelivery delay after a crash.
WINDOW_LOCK = 4.0
#: Shorter than the redelivery delay: a repeat after a crash falls outside it.
SHORT_WINDOW = 2.0
WINDOW_KINDS = ("event", "fork")


#: parse_watch_request needs an endpoint only to check a statusUrl; parts-based bodies
#: do not depend on it, and submission_key does not include it.
ARM_ANY = "http://127.0.0.1:1"
