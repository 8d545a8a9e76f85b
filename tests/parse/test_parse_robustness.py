"""The parser never raises, keeps what it holds bounded, and honours the journal's time."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from watcher.classify.taxonomy import Classification, classify
from watcher.parse.lines import (
    MAX_LINE_CHARS,
    UNPARSED_PREFIX_CHARS,
    parse_any,
    parse_jsonl,
    parse_line,
)
from watcher.parse.records import ChainStopped, FallbackDecision, LaneHint, ModelRef, Unparsed

_OK_TYPES = (FallbackDecision, ChainStopped, LaneHint, Unparsed, type(None))
_MARK = "[model-fallback/decision] model fallback decision: "
_LINE = (
    _MARK + "decision=candidate_failed requested=ollama/kimi-k2.5:cloud "
    "candidate=ollama/kimi-k2.5:cloud reason=rate_limit next=openai/gpt-5.5 detail=429 slow down"
)
_PREFIXES = st.sampled_from(
    [
        "",
        _MARK,
        "[model-fallback] ",
        "model fallback chain stopped: ",
        "[diagnostic] lane task error: lane=session:agent:",
        _MARK + "decision=candidate_failed requested=a/b candidate=",
        '{"0":"{\\"subsystem\\":\\"model-fallback/decision\\"}","1":{"decision":',
        '{"decision":"candidate_failed","requestedProvider":',
        "\x1b[90m",
    ]
)


def _check(result: object) -> None:
    assert isinstance(result, _OK_TYPES)
    if isinstance(result, Unparsed):
        assert len(result.text) <= UNPARSED_PREFIX_CHARS
    if isinstance(result, FallbackDecision | ChainStopped):
        assert isinstance(classify(result), Classification)


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    for parser in (parse_line, parse_jsonl, parse_any):
        _check(parser(text))


@given(st.binary())
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for parser in (parse_line, parse_jsonl, parse_any):
        _check(parser(data))


@given(_PREFIXES, st.text(), st.binary())
def test_hostile_text_after_a_fallback_marker_never_raises(
    prefix: str, tail: str, raw: bytes
) -> None:
    _check(parse_any(prefix + tail))
    _check(parse_any(prefix.encode() + raw))
    _check(parse_line(_LINE[: len(tail) % (len(_LINE) + 1)] + tail))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids),
        max_leaves=20,
    )
)
def test_arbitrary_json_values_in_a_decision_record_never_raise(value: object) -> None:
    for key in (
        "decision",
        "requestedProvider",
        "candidateModel",
        "httpCode",
        "time",
        "suppressedDuplicateCount",
        "errorPreview",
        "1",
    ):
        record = {
            "0": '{"subsystem":"model-fallback/decision"}',
            "2": "model fallback decision",
            "1": {
                "decision": "candidate_failed",
                "requestedProvider": "a",
                "requestedModel": "b",
                "candidateProvider": "a",
                "candidateModel": "b",
            },
        }
        if key == "1":
            record["1"] = value
        else:
            record["1"][key] = value  # type: ignore[index]
        _check(parse_jsonl(json.dumps(record)))


def test_journal_timestamp_wins_over_the_printed_one() -> None:
    line = "2026-05-04T17:48:04.457+02:00 " + _LINE
    assert parse_line(line).ts == 1777909684.457  # type: ignore[union-attr]
    assert parse_line(line, ts=1800000000.5).ts == 1800000000.5  # type: ignore[union-attr]


def test_huge_decision_line_keeps_a_bounded_detail_and_still_counts() -> None:
    result = parse_line(_LINE + "x" * (4 * MAX_LINE_CHARS))
    assert isinstance(result, FallbackDecision)
    assert result.detail is not None and len(result.detail) <= MAX_LINE_CHARS
    assert result.candidate == ModelRef("ollama", "kimi-k2.5:cloud")


def test_huge_garbage_with_a_marker_is_unparsed_with_a_short_prefix() -> None:
    result = parse_line(b"[model-fallback/decision] " + b"\xff" * (2 * MAX_LINE_CHARS))
    assert isinstance(result, Unparsed)
    assert len(result.text) <= UNPARSED_PREFIX_CHARS


def test_deeply_nested_json_is_unparsed_not_a_crash() -> None:
    line = '{"fallback":' + "[" * 200_000 + "]" * 200_000 + "}"
    _check(parse_any(line))
    _check(parse_line(line))


def test_bytes_and_text_give_the_same_record() -> None:
    assert parse_line(_LINE.encode()) == parse_line(_LINE)
    assert parse_any(_LINE.encode()) == parse_any(_LINE)


def test_suppressed_duplicates_count_as_more_failures() -> None:
    suffix = "detail=401 nope (12 duplicates suppressed in last 30s)"
    line = _LINE.replace("detail=429 slow down", suffix)
    result = parse_line(line)
    assert isinstance(result, FallbackDecision)
    assert result.suppressed_duplicates == 12 and result.occurrences == 13
    assert result.detail == "401 nope"


def test_chain_exhausted_is_a_failure_with_next_none() -> None:
    result = parse_line(_LINE.replace("next=openai/gpt-5.5", "next=none"))
    assert isinstance(result, FallbackDecision) and result.chain_exhausted


def test_chatter_is_none_for_text_and_bytes() -> None:
    chatter = "2026-11-22T21:00:03.114+00:00 [gateway] loading config from openclaw.json"
    assert parse_line(chatter) is None
    assert parse_line(chatter.encode()) is None
    assert parse_any(chatter) is None
