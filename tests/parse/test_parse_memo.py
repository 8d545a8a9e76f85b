"""The memos on the catch-up path (the decision body's fields, a decision's
classification, a detail's redaction) give exactly what the work they skip gives, stay
bounded, and never serve a redaction made before a secret was registered."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.parse.vectors import load_vectors
from watcher.classify import taxonomy
from watcher.classify.taxonomy import classify, evidence_of
from watcher.parse import lines
from watcher.parse.lines import parse_line
from watcher.parse.records import FallbackDecision, Unparsed
from watcher.support import redaction
from watcher.support.redaction import REDACTED, redact, register_secret

BODY = (" decision=candidate_failed requested=openai/gpt-5.5 candidate=openai/gpt-5.5 "
        "reason=rate_limit next=openai/gpt-5.2 detail=429 Rate limit exceeded, retry after 20s")
MARK = "[model-fallback/decision] model fallback decision:"


def fresh(line: str | bytes, ts: float | None) -> object:
    """What ``parse_line`` gives with the memo empty."""
    lines._body_fields.cache_clear()
    return parse_line(line, ts=ts)


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: v.id)
def test_a_memoised_line_parses_as_it_did_fresh(vector: object) -> None:
    line = vector.line  # type: ignore[attr-defined]
    first = fresh(line, ts=None)
    assert parse_line(line, ts=None) == first  # the second time, from the memo
    stamped = parse_line(line, ts=1_790_000_000.5)
    assert stamped == fresh(line, ts=1_790_000_000.5)
    if isinstance(first, FallbackDecision):
        assert classify(first) == taxonomy._decide(*evidence_of(first))


def test_the_same_body_keeps_each_lines_own_time() -> None:
    lines._body_fields.cache_clear()
    a = parse_line(f"2026-11-22T02:45:01.000+00:00 {MARK}{BODY}")
    b = parse_line(f"2026-11-22T02:45:09.500+00:00 {MARK}{BODY}")
    c = parse_line(f"{MARK}{BODY}", ts=42.0)
    d = parse_line(f"21:55:41 {MARK}{BODY}")  # a time without a date: none
    assert isinstance(a, FallbackDecision) and isinstance(b, FallbackDecision)
    assert b.ts is not None and a.ts is not None and b.ts - a.ts == 8.5
    assert replace(a, ts=None) == replace(b, ts=None) == replace(c, ts=None)
    assert isinstance(c, FallbackDecision) and c.ts == 42.0
    assert isinstance(d, FallbackDecision) and d.ts is None
    assert lines._body_fields.cache_info().currsize == 1


def test_an_unparsed_body_keeps_no_record_and_names_its_own_line() -> None:
    lines._body_fields.cache_clear()
    body = " decision=candidate_failed requested=openai/gpt-5.5 reason=auth"
    for prefix in ("first-host", "second-host"):
        got = parse_line(f"{prefix} {MARK}{body}")
        assert isinstance(got, Unparsed) and "next=" in got.why
        assert got.text.startswith(prefix)
    assert lines._body_fields(body) is None  # what is kept for it names no line


def test_the_memo_stays_bounded_under_unique_and_long_bodies() -> None:
    lines._body_fields.cache_clear()
    for i in range(3 * lines._MEMO_SIZE):
        assert isinstance(parse_line(f"{MARK}{BODY} id={i}", ts=1.0), FallbackDecision)
        assert lines._body_fields.cache_info().currsize <= lines._MEMO_SIZE
    lines._body_fields.cache_clear()
    long = f"{MARK}{BODY} {'x' * lines._MEMO_BODY_CHARS}"
    assert isinstance(parse_line(long, ts=1.0), FallbackDecision)
    assert lines._body_fields.cache_info().currsize == 0


def test_a_long_detail_is_classified_afresh_and_alike() -> None:
    record = parse_line(f"{MARK}{BODY} {'y' * 600}", ts=1.0)
    assert isinstance(record, FallbackDecision) and record.detail
    assert len(record.detail) > taxonomy.CACHED_TEXT_CHARS
    assert classify(record) == taxonomy._decide(*evidence_of(record))


def test_a_redaction_memoised_before_a_registration_is_not_served_after() -> None:
    secret = "zz-memo-registered-later-77aa"
    text = f"upstream echoed {secret} back"
    assert redact(text) == text
    assert redact(text) == text  # now memoised, for the secrets of before
    register_secret(secret)
    try:
        assert redact(text) == f"upstream echoed {REDACTED} back"
    finally:
        with redaction._lock:
            redaction._secrets.discard(secret)
            redaction._by_length = tuple(sorted(redaction._secrets, key=len, reverse=True))


def test_the_redaction_memo_stays_bounded() -> None:
    for i in range(3 * redaction._MEMO_SIZE):
        redact(f"detail number {i}")
        assert redaction._redacted.cache_info().currsize <= redaction._MEMO_SIZE
    held = redaction._redacted.cache_info().currsize
    redact("z" * (redaction._MEMO_TEXT_CHARS + 1))
    redact("a log line of ours, never memoised", long_runs=False)
    assert redaction._redacted.cache_info().currsize == held
