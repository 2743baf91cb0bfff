"""The pollers: ours (the real decision code) and the anchors it is compared with.

- ``Ours`` drives ``ops_status.decision.decide`` with real ``WatchRequest`` objects (from
  ``parse_watch_request``) and real ``StatusRead``/``ReadFailure`` observations.
- ``OursFast`` calls ``ops_status.policy.poll_delay`` with exactly the arguments ``decide``
  passes it (elapsed time from the same datetimes, the same jitter key and attempt, the
  same deadline): the same delays, about ten times faster, for the multi-seed runs and
  the sweep. tests/unit/test_poll_policy_benchmark.py checks that both give identical
  results.
- ``AzureCore``: azure-core's ``LROBasePolling`` as azure-mgmt-core's ``ARMPolling``
  configures it: the Retry-After of the last answer replaces the 30 s interval
  (``_extract_delay``); its pipeline's ``RetryPolicy`` waits out a 429's Retry-After and
  raises after 10 retries.
- ``AzWait``: ``az ... wait`` (azure-cli ``WaitCommandOperation``): GETs the *resource*
  (no Retry-After) every ``--interval`` 30 s, at most ``range(0, --timeout 3600, 30)``,
  i.e. 120 times, then gives up; 429s are retried by the SDK's ``RetryPolicy`` as above.
- ``FairShare``: a fleet reference no real poller can be (it knows the fleet's size).
- ``Eager``: the oracle as a poller: reads again the instant Retry-After permits, and
  every ``interval`` seconds otherwise (checks ``simulation.oracle_lags`` in the tests).
"""

from __future__ import annotations

import bisect
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from benchmarks.poll_policy.arm import BUCKET_REFILL, Answer
from benchmarks.poll_policy.workload import Operation
from ops_status.clock import format_time, parse_time
from ops_status.decision import Finish, decide
from ops_status.observation import ReadFailure, ReadFailureKind, StatusRead
from ops_status.policy import PollPolicy, jitter_fraction, poll_delay
from ops_status.request import WatchRequest, parse_watch_request

ARM_ENDPOINT = "https://management.azure.com"
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
WATCH_TIMEOUT = 6 * 3600
# azure-core RetryPolicy: retry_total=10, 429 retried after its Retry-After.
SDK_429_RETRIES = 10
# ops_status.decision: a 429 without Retry-After waits this long.
_THROTTLE_DEFAULT_WAIT = 60.0


class GaveUp(Exception):
    """The poller stopped watching before the operation ended: a miss."""


class Poller:
    """Given an answer, seconds until the next read, or None when the watch is over."""

    name = "poller"
    in_process = False
    """True: sleeps in-process between reads (only ARM's round trip adds to the delay).
    False: reschedules through Service Bus (delivery and dispatch add to it too)."""
    max_429_retries: int | None = None
    """Consecutive 429s after which the poller raises (None: never)."""
    reads_operation_status = True
    """False: reads the resource instead, whose answers carry no Retry-After."""

    def start(self, op: Operation) -> None:
        """Called once per operation before the first read."""

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        raise NotImplementedError


def _watch_request(op: Operation, policy: PollPolicy) -> WatchRequest:
    body = {
        "subscriptionId": op.subscription,
        "location": "West Europe",
        "operationId": f"{uuid.UUID(int=op.index)}*{op.index:08X}",
        "correlationId": f"bench-{op.index}",
        "timeout": WATCH_TIMEOUT,
    }
    return parse_watch_request(json.dumps(body), arm_endpoint=ARM_ENDPOINT, policy=policy)


def _moment(now: float) -> datetime:
    return EPOCH + timedelta(seconds=now)


class Ours(Poller):
    """The real decision code: parse_watch_request, StatusRead/ReadFailure, decide."""

    def __init__(self, policy: PollPolicy, name: str = "ours") -> None:
        self.policy = policy
        self.name = name
        self._requests: dict[int, WatchRequest] = {}
        self._start_times: dict[int, str] = {}
        self.outcomes: dict[int, str] = {}

    def start(self, op: Operation) -> None:
        self._start_times[op.index] = format_time(_moment(op.start))
        self._requests[op.index] = _watch_request(op, self.policy)

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        observation: StatusRead | ReadFailure
        if answer.throttled:
            observation = ReadFailure(
                ReadFailureKind.THROTTLED,
                "HTTP 429 TooManyRequests",
                429,
                {"code": "TooManyRequests", "message": "throttled"},
                retry_after=answer.retry_after,
                remaining_reads=answer.remaining,
            )
        else:
            observation = StatusRead(
                status=answer.status,
                percent_complete=answer.percent,
                start_time=self._start_times[op.index],
                retry_after=answer.retry_after,
                remaining_reads=answer.remaining,
            )
        action = decide(self._requests[op.index], observation, _moment(now), self.policy)
        if isinstance(action, Finish):
            self.outcomes[op.index] = action.outcome.status.value
            del self._requests[op.index]
            return None
        self._requests[op.index] = action.next_request
        return action.delay


class _Watch:
    __slots__ = ("attempt", "deadline", "first_seen", "key", "started")

    def __init__(self, key: str, started: datetime) -> None:
        self.key = key
        self.started = started
        self.attempt = 0
        self.first_seen: datetime | None = None
        self.deadline: datetime | None = None


class OursFast(Poller):
    """``poll_delay`` with the arguments ``decide`` would pass it, without the message
    plumbing around it (see the module docstring). Only the observations the simulated
    ARM produces are handled: running, Succeeded/Failed, and 429."""

    def __init__(
        self,
        policy: PollPolicy,
        name: str = "ours",
        *,
        delay_function: Callable[..., float] = poll_delay,
    ) -> None:
        self.policy = policy
        self.name = name
        self.delay_function = delay_function
        """``poll_delay``, or a frozen earlier version of it (``previous.py``)."""
        self._watches: dict[int, _Watch] = {}
        self.outcomes: dict[int, str] = {}

    def start(self, op: Operation) -> None:
        started = parse_time(format_time(_moment(op.start)))
        self._watches[op.index] = _Watch(_watch_request(op, self.policy).watch_key, started)

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        policy, watch, moment = self.policy, self._watches[op.index], _moment(now)
        if watch.first_seen is None:
            watch.first_seen = moment
            watch.deadline = moment + timedelta(seconds=min(WATCH_TIMEOUT, policy.max_timeout))
        assert watch.deadline is not None
        watch.attempt += 1
        if not answer.throttled and answer.status != "Running":
            self.outcomes[op.index] = answer.status
            del self._watches[op.index]
            return None
        remaining = (watch.deadline - moment).total_seconds()
        if remaining <= 0:
            self.outcomes[op.index] = "TimedOut"
            del self._watches[op.index]
            return None
        percent = since_start = None
        if answer.throttled:
            retry_after = (
                answer.retry_after if answer.retry_after is not None else _THROTTLE_DEFAULT_WAIT
            )
        else:
            retry_after, percent = answer.retry_after, answer.percent
            since = (moment - watch.started).total_seconds()
            since_start = since if since >= 0 else None
        delay = self.delay_function(
            policy,
            elapsed=(moment - watch.first_seen).total_seconds(),
            retry_after=retry_after,
            remaining_reads=answer.remaining,
            jitter=jitter_fraction(watch.key, watch.attempt),
            percent_complete=percent,
            since_start=since_start,
        )
        return min(delay, remaining)


class AzureCore(Poller):
    """azure-core ``LROBasePolling`` as ``ARMPolling`` sets it up (``timeout=30``)."""

    in_process = True
    max_429_retries = SDK_429_RETRIES

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self.name = f"azure-core ARMPolling {interval:g} s"

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if answer.throttled:
            return answer.retry_after  # RetryPolicy sleeps the 429's Retry-After
        if answer.status != "Running":
            return None
        return answer.retry_after if answer.retry_after else self.interval


class AzWait(Poller):
    """azure-cli ``az ... wait``: GET the resource, sleep ``interval``, at most
    ``len(range(0, timeout, interval))`` times."""

    in_process = True
    max_429_retries = SDK_429_RETRIES
    reads_operation_status = False

    def __init__(self, interval: int = 30, timeout: int = 3600) -> None:
        self.interval = float(interval)
        self.iterations = len(range(0, timeout, interval))
        self.name = f"az ... wait ({interval} s, {timeout} s)"
        self._done: dict[int, int] = {}

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if answer.throttled:
            return answer.retry_after
        if answer.status != "Running":
            return None
        done = self._done.get(op.index, 0) + 1
        self._done[op.index] = done
        if done >= self.iterations:
            raise GaveUp(f"timed out after {self.iterations} reads")
        return self.interval  # the resource GET carries no Retry-After


class FairShare(Poller):
    """A reference no real poller can be: it knows how many watches are in flight on the
    subscription and spaces every one of them so that all together read at ``share`` of
    ARM's refill rate (never faster than ours' regular schedule). It shows what the read
    budget allows; it is not a policy to compare against on equal terms."""

    name = "(fleet-aware reference)"

    def __init__(self, policy: PollPolicy, share: float = 0.9) -> None:
        self.policy = policy
        self.share = share
        self._submits: dict[str, list[float]] = {}
        self._finished: dict[str, int] = {}

    def start(self, op: Operation) -> None:
        bisect.insort(self._submits.setdefault(op.subscription, []), op.submit)

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        sub = op.subscription
        if not answer.throttled and answer.status != "Running":
            self._finished[sub] = self._finished.get(sub, 0) + 1
            return None
        inflight = bisect.bisect_right(self._submits[sub], now) - self._finished.get(sub, 0)
        p = self.policy
        regular = max(p.min_delay, min(p.max_delay, p.growth * (now - op.submit)))
        return max(regular, inflight / (self.share * BUCKET_REFILL), answer.retry_after or 0.0)


class Eager(Poller):
    """The oracle's schedule run through the simulation: the next read the instant the
    answer's Retry-After permits, else after ``interval``. Without hops, on an ARM that
    never throttles, its lag is ``oracle_lags``' on every operation that sends
    Retry-After, and under ``interval`` on the others."""

    in_process = True

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.name = f"eager ({interval:g} s without Retry-After)"

    def next_delay(self, op: Operation, answer: Answer, now: float) -> float | None:
        if not answer.throttled and answer.status != "Running":
            return None
        return answer.retry_after if answer.retry_after is not None else self.interval
