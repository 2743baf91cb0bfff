"""W3C Trace Context values: what is read, what is ignored, what is written."""

from __future__ import annotations

import itertools

import pytest

from ops_status.traceparent import (
    MAX_HEADER_LENGTH,
    TraceContext,
    new_trace_context,
    parse_trace_context,
    parse_traceparent,
    parse_tracestate,
    trace_context_from_properties,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_a_valid_traceparent_is_read_and_written_back_unchanged() -> None:
    context = parse_traceparent(VALID)

    assert context == TraceContext(TRACE_ID, SPAN_ID, 1)
    assert context.sampled
    assert context.traceparent == VALID


def test_an_unsampled_traceparent_keeps_its_flags() -> None:
    context = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00")

    assert context is not None
    assert not context.sampled
    assert context.traceparent.endswith("-00")


def test_bytes_as_an_amqp_property_gives_them_are_read_too() -> None:
    assert parse_traceparent(VALID.encode()) == parse_traceparent(VALID)


def test_surrounding_header_whitespace_is_not_part_of_the_value() -> None:
    assert parse_traceparent(f" \t{VALID} ") == parse_traceparent(VALID)


def test_a_future_version_is_read_by_its_first_four_fields() -> None:
    context = parse_traceparent(f"cc-{TRACE_ID}-{SPAN_ID}-01-what-the-future-holds")

    assert context == TraceContext(TRACE_ID, SPAN_ID, 1)
    assert context.traceparent == VALID  # we speak version 00


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 is exactly 55 characters
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is forbidden
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # upper-case hex
        f"00-{TRACE_ID}-{SPAN_ID}-1",
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"cc-{TRACE_ID}-{SPAN_ID}-01x",  # a later version still separates fields with "-"
        f"00-{TRACE_ID}-{SPAN_ID}-01\n",  # a newline is not header whitespace
        "|4bf92f3577b34da6a3ce929d0e0e4736.1.",  # the old hierarchical Request-Id
        f"00-{TRACE_ID}-{SPAN_ID}-0\u0661",  # an Arabic-Indic digit
        f"00-{TRACE_ID}-{SPAN_ID}-01" + " " * MAX_HEADER_LENGTH,
        b"\xff\xfe",
        12345,
    ],
)
def test_an_invalid_traceparent_is_ignored_never_raised(value: object) -> None:
    assert parse_traceparent(value) is None
    assert parse_trace_context(value, "vendor=value") is None


def test_a_valid_tracestate_is_kept_trimmed_without_empty_members() -> None:
    assert parse_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,") == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert parse_tracestate("tenant1@vendor=x") == "tenant1@vendor=x"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " , ",
        "novalue",
        "Upper=x",  # keys are lower case
        "k=v,k=w",  # a key at most once
        "k=has,comma",
        "k=a\tb",  # a tab inside a value
        "k=a=b",
        "1starts-with-digit=x",
        ",".join(f"k{n}=v" for n in range(33)),  # more than 32 members
        "k=" + "v" * 257,
        "k=caf\u00e9",
    ],
)
def test_a_malformed_tracestate_is_dropped_whole(value: object) -> None:
    assert parse_tracestate(value) is None


def test_a_malformed_tracestate_does_not_cost_the_trace() -> None:
    context = parse_trace_context(VALID, "k=v,k=w")

    assert context == TraceContext(TRACE_ID, SPAN_ID, 1, None)


def test_message_properties_prefer_traceparent_then_diagnostic_id_with_either_key_type() -> None:
    other = f"00-{'1' * 32}-{SPAN_ID}-01"

    assert trace_context_from_properties({b"traceparent": VALID.encode()}) == parse_traceparent(
        VALID
    )
    assert trace_context_from_properties({"Diagnostic-Id": VALID}) == parse_traceparent(VALID)
    both = trace_context_from_properties({"Diagnostic-Id": other, "traceparent": VALID})
    assert both is not None
    assert both.trace_id == TRACE_ID
    with_state = trace_context_from_properties({b"traceparent": VALID, b"tracestate": b"a=b"})
    assert with_state is not None
    assert with_state.tracestate == "a=b"


def test_properties_without_a_valid_context_give_none() -> None:
    assert trace_context_from_properties({}) is None
    assert trace_context_from_properties({"Diagnostic-Id": "|abc.1."}) is None
    assert trace_context_from_properties({"traceparent": "nope", "status": "Failed"}) is None


def test_a_new_trace_has_random_non_zero_ids_and_is_sampled() -> None:
    contexts = {new_trace_context() for _ in range(50)}

    assert len({c.trace_id for c in contexts}) == 50
    for context in contexts:
        assert parse_traceparent(context.traceparent) == context
        assert context.sampled


def test_a_new_trace_never_uses_an_all_zero_id() -> None:
    # Given a random source whose first draws are zero
    draws = itertools.chain([0, 0, 7, 0, 9], itertools.repeat(1))

    context = new_trace_context(randbits=lambda _bits: next(draws))

    assert context.trace_id == f"{7:032x}"
    assert context.parent_id == f"{9:016x}"
