"""The engines: ``parse_watch_request`` and ``classify_response``, time-bounded, with
hypothesis (structured generation) or atheris (coverage-guided byte mutation)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from .properties import (
    ARM,
    SUB,
    check_request,
    check_response,
    counts,
)


def run_hypothesis(seconds: float, seed: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st

    pieces = st.sampled_from(
        [
            "https://",
            "http://",
            "//",
            "/",
            "\\",
            "@",
            ":",
            ":443",
            ":444",
            "management.azure.com",
            "MANAGEMENT.AZURE.COM",
            "evil.example",
            ".",
            "..",
            "%2e",
            "%2E%2E",
            "%2f",
            "%5c",
            "%40",
            "%25",
            "%00",
            "#",
            "?",
            "&",
            "=",
            "api-version=2025-07-01",
            "subscriptions",
            SUB,
            "providers",
            "Microsoft.Cache",
            "locations",
            "westus",
            "operationsStatus",
            "op",
            "\r\n",
            "\x00",
            "\u0435",
            "xn--",
            "[::1]",
            " ",
            "\t",
        ]
    )
    urls = st.one_of(
        st.lists(pieces, max_size=16).map("".join),
        st.lists(pieces, max_size=12).map(
            lambda p: f"https://management.azure.com/subscriptions/{SUB}/" + "".join(p)
        ),
        st.text(max_size=120),
    )
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), urls
    )
    json_values = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
    keys = st.sampled_from(
        [
            "subscriptionId",
            "location",
            "operationId",
            "apiVersion",
            "statusUrl",
            "correlationId",
            "timeout",
            "deadline",
            "context",
            "pollState",
        ]
    )
    segment_like = st.lists(pieces, min_size=1, max_size=4).map("".join)
    valid_bases = st.sampled_from(
        [
            {"subscriptionId": SUB, "location": "westus", "operationId": "op-1"},
            {
                "statusUrl": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Cache/locations/"
                "westus/operationsStatus/op-1?api-version=2025-07-01"
            },
        ]
    )
    documents = st.one_of(
        st.dictionaries(keys, json_values, max_size=8),
        # mostly valid requests with one to three fields made hostile
        st.builds(
            lambda base, extra: {**base, **extra},
            valid_bases,
            st.dictionaries(keys, st.one_of(json_values, segment_like), max_size=3),
        ),
        st.builds(
            lambda suffix: {"statusUrl": f"{ARM}/subscriptions/{SUB}/{suffix}"},
            segment_like.map(lambda s: s + "?api-version=2025-07-01"),
        ),
    )
    bodies = st.one_of(
        documents.map(lambda d: json.dumps(d).encode()),
        st.builds(
            lambda d, extra: json.dumps(d)[:-1].encode() + extra,
            documents,
            st.binary(max_size=40),
        ),
        st.binary(max_size=400),
    )
    responses = st.tuples(
        st.one_of(st.just(200), st.integers(min_value=100, max_value=599)),
        st.dictionaries(
            st.sampled_from(
                [
                    "retry-after",
                    "retry-after-ms",
                    "x-ms-retry-after-ms",
                    "x-ms-ratelimit-remaining-subscription-reads",
                ]
            ),
            st.text(max_size=40),
            max_size=3,
        ),
        st.one_of(
            st.binary(max_size=400),
            st.builds(lambda v: json.dumps({"status": v}).encode(), json_values),
            st.builds(lambda v: json.dumps({"status": "Failed", "error": v}).encode(), json_values),
            json_values.map(lambda v: json.dumps(v).encode()),
        ),
    )
    deadline = time.monotonic() + seconds

    class Done(BaseException):  # not an Exception: hypothesis stops at once, no shrinking
        pass

    @fix_seed(seed)
    @settings(
        max_examples=10_000_000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bodies, responses)
    def fuzz(body: bytes, response: tuple[int, dict[str, str], bytes]) -> None:
        if time.monotonic() > deadline:
            raise Done
        check_request(body)
        check_response(*response)

    with contextlib.suppress(Done):
        fuzz()


# -- atheris engine -------------------------------------------------------------------


def run_atheris(seconds: float, seed: int) -> None:

    import atheris

    _instrument(atheris)
    deadline = time.monotonic() + seconds

    def one_input(data: bytes) -> None:
        if time.monotonic() > deadline:
            # libFuzzer exits without running Python's atexit hooks: report, then leave.
            print_counts("atheris", seconds)
            sys.stdout.flush()
            os._exit(0)
        provider = atheris.FuzzedDataProvider(data)
        choice = provider.ConsumeIntInRange(0, 4)
        if choice == 0:
            check_request(provider.ConsumeBytes(provider.remaining_bytes()))
        elif choice == 1:
            url = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
            check_request(json.dumps({"statusUrl": url}).encode())
        elif choice == 2:
            tail = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
            query = "" if "?" in tail else "?api-version=2025-07-01"
            url = f"{ARM}/subscriptions/{SUB}/{tail}{query}"
            check_request(json.dumps({"statusUrl": url}).encode())
        elif choice == 3:
            location = provider.ConsumeUnicodeNoSurrogates(12) or "westus"
            operation = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
            document = {"subscriptionId": SUB, "location": location, "operationId": operation}
            check_request(json.dumps(document).encode())
        else:
            status = provider.ConsumeIntInRange(100, 599)
            retry = provider.ConsumeUnicodeNoSurrogates(8)
            check_response(status, {"retry-after": retry}, provider.ConsumeBytes(10_000))

    atheris.Setup(
        [sys.argv[0], f"-max_total_time={int(seconds) + 5}", f"-seed={seed}", "-max_len=4096"],
        one_input,
    )
    atheris.Fuzz()


def _instrument(atheris: object) -> None:
    """Coverage feedback for ops_status only (instrument_all takes minutes on the SDKs)."""
    import inspect

    for name, module in list(sys.modules.items()):
        if not name.startswith("ops_status"):
            continue
        for _, member in inspect.getmembers(module):
            functions = [member] if inspect.isfunction(member) else []
            if inspect.isclass(member):
                functions = [f for _, f in inspect.getmembers(member, inspect.isfunction)]
            for function in functions:
                if getattr(function, "__module__", "") == name:
                    atheris.instrument_func(function)  # type: ignore[attr-defined]


def print_counts(engine: str, seconds: float) -> None:
    print(f"fuzz run: engine {engine}, {seconds:g} s budget")
    for target in ("request", "response"):
        tried = counts[f"{target}.tried"]
        detail = ", ".join(
            f"{k.split('.', 1)[1]} {v}"
            for k, v in sorted(counts.items())
            if k.startswith(target + ".") and not k.endswith(".tried")
        )
        print(f"  {target:8}: {tried} inputs tried ({detail})")
    print("  no property violated" if counts["request.tried"] else "  nothing ran")
