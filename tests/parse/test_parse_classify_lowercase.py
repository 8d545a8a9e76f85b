"""A signature's lower-case pattern (no IGNORECASE, on the lower-cased text) finds
exactly what its case-blind pattern finds on any ASCII text, and a classification that
uses it is the one without it."""

from __future__ import annotations

import random

import pytest

from tests.parse.vectors import load_vectors
from watcher.classify import taxonomy
from watcher.classify.signatures import SIGNATURES, Signature
from watcher.classify.taxonomy import evidence_of
from watcher.parse.lines import parse_line
from watcher.parse.records import ChainStopped, FallbackDecision
from watcher.support.regex import absent, lowered, needed_lower, required_strings

FAST = [s for s in SIGNATURES if s.lower_pattern is not None]


def _texts() -> list[str]:
    """Every vector's text, and each one case-scrambled and cut in two ways."""
    rng = random.Random(19)
    texts: list[str] = []
    for vector in load_vectors():
        record = parse_line(vector.line)
        if isinstance(record, FallbackDecision | ChainStopped):
            texts.append(evidence_of(record)[3])
    texts += ["", "A", "RATE LIMIT", "Rate_Limit", "ECONNREFUSED", "Timed Out", "İs in cooldown",
              "SqliteWorkerError: database is locked", "StateDatabaseCoordinator: closed"]
    scrambled = []
    for text in texts:
        scrambled.append("".join(c.upper() if rng.random() < 0.5 else c for c in text))
        scrambled.append(text.upper())
        scrambled.append(text[: len(text) // 2] + text.title()[len(text) // 2 :])
    return texts + scrambled


TEXTS = _texts()


def test_nearly_every_pattern_has_its_fast_twin() -> None:
    # A capital in the source keeps a pattern case-blind only (\\b vs \\B, \\w vs \\W).
    slow = [s.id for s in SIGNATURES if s.pattern is not None and s.lower_pattern is None]
    assert len(FAST) >= 20
    for sig in SIGNATURES:
        if sig.id in slow:
            assert sig.pattern is not None and not sig.pattern.pattern.islower()


@pytest.mark.parametrize("sig", FAST, ids=lambda s: s.id)
def test_the_lower_case_pattern_finds_what_the_case_blind_one_does(sig: Signature) -> None:
    assert sig.pattern is not None and sig.lower_pattern is not None
    hits = 0
    for text in TEXTS:
        lower = lowered(text)
        if lower is None:
            assert not text.isascii()
            continue
        blind = sig.pattern.search(text) is not None
        assert (sig.lower_pattern.search(lower) is not None) == blind, text
        assert sig.finds(text, lower) == blind, text  # with the substring pre-check
        if blind and sig.needs is not None:
            assert any(n in lower for n in sig.needs)
        hits += blind
    assert hits > 0  # the vectors hold a positive sample of every row


@pytest.mark.parametrize(("pattern", "needs"), [
    ("colou?r", ("colo",)),
    ("a?bcd", ("bcd",)),
    ("x{0,3}yyy", ("yyy",)),
    ("(foo)+bar", ("foo",)),
    ("[ab]cde", ("cde",)),
    ("(?:abc|defg)xy", ("abc", "defg")),
    ("abc|defg", ("abc", "defg")),
    ("timed[_ ]?out|timeout", ("time",)),  # the parser takes the common prefix out
    ("(?:ab|cd)ef", None),  # nothing of three characters
    ("abc|d", None),  # one branch needs nothing
    ("(?:abc)?def", ("def",)),
    ("(?:abc)?", None),
    ("(?=abcd)", None),
    (".*", None),
    ("(", None),  # not a regex: no pre-check, never a crash
])
def test_the_strings_a_pattern_needs(pattern: str, needs: tuple[str, ...] | None) -> None:
    assert required_strings(pattern) == needs


def test_most_patterns_get_a_pre_check() -> None:
    assert sum(s.needs is not None for s in FAST) >= len(FAST) - 2


def test_a_text_that_is_not_ascii_keeps_the_case_blind_pattern() -> None:
    assert lowered("İS IN COOLDOWN") is None
    assert lowered("Is In Cooldown") == "is in cooldown"


def test_classification_is_the_same_with_and_without_the_fast_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [(c, r, s, t) for t in TEXTS for c, r, s in (
        ("candidate_failed", "unknown", None), ("candidate_failed", "rate_limit", 429),
        ("chain_stopped", "timeout", None), ("outcome", None, 503),
    )]
    fast = [taxonomy._decide_uncached(*case) for case in cases]
    monkeypatch.setattr("watcher.classify.taxonomy.lowered", lambda text: None)
    assert [taxonomy._decide_uncached(*case) for case in cases] == fast


@pytest.mark.parametrize("name", ["_STATUS_IN_TEXT", "_RETRY_AFTER"])
def test_the_status_and_retry_after_pre_checks_never_skip_a_match(name: str) -> None:
    pattern = getattr(taxonomy, name)
    needs = needed_lower(pattern)
    assert needs is not None
    texts = [*TEXTS, "HTTP/1.1 503", "Status Code: 429", "Retry-After: 20", "TRY AGAIN IN 3s",
             "statusCode=502", "error code: 529", "retry after 1.5 minutes"]
    hits = 0
    for text in texts:
        found = pattern.search(text) is not None
        if absent(needs, text):
            assert not found, text
        hits += found
    assert hits >= 7


def test_absent_never_judges_a_text_that_is_not_ascii() -> None:
    assert not absent(("retry",), "Ŕetry-After: 20")
    assert absent(("retry",), "nothing here")
    assert not absent(None, "nothing here")
