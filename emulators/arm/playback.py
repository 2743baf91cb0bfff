"""Playing a script back: which step answers this poll, and the body it answers with.

This module owns ``Progress`` (one operation's place in its script: the step, how often
or since when it has been served, when the operation started and ended) and ``render``
(a step as ARM's status code and OperationStatus or error body, with the request's
operation id, subscription, location and path filled into its messages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from .script import STATUS_KINDS, Step
from .wire import arm_timestamp, encode

__all__ = ["Progress", "render"]


@dataclass
class Progress:
    steps: tuple[Step, ...]
    scripted_at: dt.datetime
    index: int = 0
    served_in_step: int = 0
    step_started_at: float | None = None
    ended_at: dt.datetime | None = None

    def next_step(self, now: float) -> Step:
        while self.index < len(self.steps) - 1:
            step = self.steps[self.index]
            if step.for_seconds is not None:
                done = (
                    self.step_started_at is not None
                    and now - self.step_started_at >= step.for_seconds
                )
            else:
                done = self.served_in_step >= step.repeat
            if not done:
                break
            self.index += 1
            self.served_in_step = 0
            self.step_started_at = None
        self.served_in_step += 1
        if self.step_started_at is None:
            self.step_started_at = now
        return self.steps[self.index]


def render(
    step: Step,
    progress: Progress,
    segments: list[str],
    context: Mapping[str, str],
) -> tuple[int, bytes]:
    if step.kind in STATUS_KINDS:
        if step.terminal and progress.ended_at is None:
            progress.ended_at = dt.datetime.now(dt.timezone.utc)
        body: dict[str, Any] = {
            "id": _resource_id(segments),
            "name": context["operation_id"],
        }
        if step.status is not None:
            body["status"] = step.status
        if step.percent_complete is not None:
            body["percentComplete"] = step.percent_complete
        body["startTime"] = arm_timestamp(progress.scripted_at)
        if step.terminal:
            body["endTime"] = arm_timestamp(progress.ended_at or progress.scripted_at)
        if step.kind == "failed" and step.error is not None:
            detail = _fill(step.error, context)
            body["error"] = {"error": detail} if step.nested else detail
        return step.http_status, encode(body)
    if step.body is not None:
        raw = step.body if isinstance(step.body, bytes) else encode(step.body)
        return step.http_status, raw
    error = _fill(step.error or {"code": "Error", "message": "Simulated error."}, context)
    return step.http_status, encode({"error": error})


def _resource_id(segments: list[str]) -> str:
    # ARM answers with the normalised location ("West US" in the request, "westus" in
    # the id: see the official example), so the id is rebuilt rather than echoed.
    normalised = list(segments)
    for index, segment in enumerate(normalised[:-1]):
        if segment.lower() == "locations":
            normalised[index + 1] = normalised[index + 1].replace(" ", "").lower()
    return "/" + "/".join(normalised)


def _fill(error: Mapping[str, Any], context: Mapping[str, str]) -> dict[str, Any]:
    """Copy an error object, filling ``{operation_id}``-style placeholders in its strings.

    Plain replacement rather than str.format: messages may quote JSON, braces and all.
    """

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for key, replacement in context.items():
                value = value.replace("{" + key + "}", replacement)
            return value
        if isinstance(value, Mapping):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return cast(dict[str, Any], fill(error))
