"""Hostile input: every class of ``hostile.py`` through the pure pipeline
in-process, then the real daemon on a ~30k-line hostile journal (the soak, small).

``.venv/bin/python -m tests.reliability.soak_hostile --lines 1000000`` is the long run.
"""

from __future__ import annotations

import random
from datetime import UTC
from pathlib import Path

import pytest

from tests.reliability.hostile import KINDS, hostile_lines, make
from tests.reliability.soak_hostile import run_soak
from watcher.alerts.cards import render
from watcher.classify.evidence import to_event
from watcher.classify.taxonomy import classify
from watcher.core.decide import decide, initial_state
from watcher.core.effects import EnqueueAlert
from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.demo import CHAINS
from watcher.fakes.botapi import MAX_TEXT, parse_telegram_html
from watcher.fakes.journal import journal_remote_binary
from watcher.parse.lines import MAX_LINE_CHARS, UNPARSED_PREFIX_CHARS, parse_any, parse_line
from watcher.parse.records import ChainStopped, FallbackDecision, LaneHint, Unparsed
from watcher.pins.schema import dumps, loads
from watcher.pins.view import to_pinfile

NOW = 1_800_000_000.0
POLICY = Policy()
SAMPLES = {kind: 4 if kind == "huge" else 100 for kind in KINDS}
# Lines that carry the decision marker intact and no valid decision: never chatter.
ALWAYS_UNPARSED = {"unknown_decision"}
MARKED = {"truncated", "duplicated_keys", "unknown_decision", "odd_ref", "nul_text",
          "html_detail", "lying_ts", "suppressed", "valid"}


def _check_cards(state: State, effects: object) -> int:
    cards = 0
    for effect in effects:  # type: ignore[attr-defined]
        if isinstance(effect, EnqueueAlert):
            card = render(effect.alert, suppressed_since_last=7, tz=UTC)
            plain = parse_telegram_html(card)  # raises on markup Telegram would refuse
            assert len(plain) <= MAX_TEXT and len(card) <= MAX_TEXT
            cards += 1
    pins = loads(dumps(to_pinfile(state, NOW)))
    assert set(pins.agents) == set(CHAINS)
    return cards


@pytest.mark.parametrize("kind", KINDS)
def test_every_hostile_class_goes_through_parse_classify_decide_and_cards(kind: str) -> None:
    rng = random.Random(f"hostile-{kind}")
    state = initial_state(CHAINS, POLICY)
    now = NOW
    seen: dict[str, int] = {}
    for _ in range(SAMPLES[kind]):
        line = make(kind, rng)
        forms: list[str | bytes] = [line.message]
        if isinstance(line.message, str):
            forms.append(line.message.encode("utf-8", "surrogateescape"))
        for form in forms:
            for ts in (None, now):
                for record in (parse_line(form, ts=ts), parse_any(form, ts=ts)):
                    seen[type(record).__name__] = seen.get(type(record).__name__, 0) + 1
                    if isinstance(record, Unparsed):
                        assert len(record.text) <= UNPARSED_PREFIX_CHARS
                    if isinstance(record, FallbackDecision):
                        assert len(record.detail or "") <= MAX_LINE_CHARS
                        assert record.ts is None or 946_684_800 <= record.ts < 4_102_444_800
                    if kind in ALWAYS_UNPARSED:
                        assert isinstance(record, Unparsed), record
                    if kind in MARKED:
                        assert record is not None, f"{kind} line taken for chatter: {form!r}"
                    if isinstance(record, FallbackDecision | ChainStopped):
                        classify(record)
                    event = to_event(record, position="p", catch_up=False)
                    if event is None:
                        assert record is None or isinstance(record, Unparsed)
                        continue
                    assert isinstance(record, FallbackDecision | ChainStopped | LaneHint)
                    # Once on a fresh state (first transitions carry the card text),
                    # once on the running state (flaps, cooldowns, recoveries).
                    fresh = decide(initial_state(CHAINS, POLICY), event, now, POLICY)
                    _check_cards(fresh.state, fresh.effects)
                    decided = decide(state, event, now, POLICY, jitter=rng.uniform(-1, 1))
                    state = decided.state
                    _check_cards(state, decided.effects)
        now += 7.0
    assert seen, kind


def test_hostile_html_in_a_detail_reaches_the_card_escaped() -> None:
    line = ("[model-fallback/decision] model fallback decision: decision=candidate_failed "
            f"requested={CHAINS['nexus'][0]} candidate={CHAINS['nexus'][0]} reason=rate_limit "
            f"next={CHAINS['nexus'][1]} detail=429 </pre><b>boom</b> &bogus; <script>x</script>")
    event = to_event(parse_line(line, ts=NOW))
    assert event is not None
    decided = decide(initial_state(CHAINS, POLICY), event, NOW, POLICY)
    cards = [render(e.alert, suppressed_since_last=0, tz=UTC)
             for e in decided.effects if isinstance(e, EnqueueAlert)]
    assert cards
    plain = "\n".join(parse_telegram_html(c) for c in cards)
    assert "</pre><b>boom</b> &bogus; <script>x</script>" in plain  # shown, not obeyed


def test_long_unique_details_and_refs_are_not_kept_alive_by_the_parse_caches() -> None:
    # Before the fix, the memoised ref parser and classifier kept every long unique
    # key: these 300 lines pinned about 15 MiB for the life of the daemon.
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            ref = f"p/{i}-" + "m" * 10_000
            line = (f"[model-fallback/decision] model fallback decision: decision=candidate_failed"
                    f" requested={ref} candidate={ref} reason=unknown next=none detail={i} "
                    + "😀" * 8000)
            record = parse_line(line, ts=NOW)
            assert isinstance(record, FallbackDecision)
            classify(record)
            del record, line
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2 * 2**20, f"{kept / 2**20:.1f} MiB kept by 300 parsed lines"


def test_the_generator_is_deterministic_and_mostly_short() -> None:
    a = [(h.kind, h.message) for h in hostile_lines(3000, seed=3, huge_every=1000)]
    b = [(h.kind, h.message) for h in hostile_lines(3000, seed=3, huge_every=1000)]
    assert a == b
    kinds = {k for k, _ in a}
    assert kinds == set(KINDS)
    huge = [m for k, m in a if k == "huge"]
    assert len(huge) == 3 and all(len(m) >= 600_000 for m in huge)
    assert max(len(m) for k, m in a if k != "huge") < 64_000


@pytest.mark.skipif(journal_remote_binary() is None,
                    reason="systemd-journal-remote is not installed")
@pytest.mark.timeout(300)
def test_daemon_survives_a_hostile_journal_with_bounded_memory(tmp_path: Path) -> None:
    report = run_soak(tmp_path, lines=30_000, seed=11, huge_every=1500, timeout=240)
    print(report.summary())
    assert report.problems == [], report.summary()
    assert report.exit_code == 0 and report.audit_ok and report.pin_agents == len(CHAINS)
    assert report.counted["unparsed"] == report.expected["unparsed"] > 1000
    assert report.counted["decisions"] == report.expected["decisions"] > 1000
    assert report.cards > 0 and report.cards_refused == 0
    assert report.kinds["huge"] == 20
