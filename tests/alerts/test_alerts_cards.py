"""Cards: a distinct title per transition, every value escaped, never over the limit.

Golden outputs live in ``tests/alerts/golden/<TYPE>.html``. After an intended change to
the layout, regenerate them with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/alerts`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.alerts.cards import CARD_BUDGET, DETAIL_CLIP, TITLES, render
from watcher.core.transitions import Alert, TransitionType
from watcher.fakes.botapi import parse_telegram_html

from .conftest import T0, UTC

GOLDEN = Path(__file__).parent / "golden"
T = TransitionType

SAMPLES: dict[TransitionType, Alert] = {
    T.FALLBACK_FIRED: Alert(
        T.FALLBACK_FIRED,
        T0,
        ("orchestrator",),
        "ollama/deepseek-v4-flash:cloud",
        "ollama/qwen3:8b",
        "throttle",
        "rate_limit",
        detail='HTTP 429 {"error":"rate_limit_exceeded"}',
    ),
    T.HARD_FAILURE: Alert(
        T.HARD_FAILURE,
        T0,
        ("coder",),
        "anthropic/claude-sonnet",
        None,
        "outage",
        "overloaded",
        detail="all 3 candidates failed: 529, 503, timeout",
    ),
    T.PAID_PROVIDER_SUCCESS: Alert(
        T.PAID_PROVIDER_SUCCESS,
        T0,
        ("orchestrator",),
        "ollama/deepseek-v4-flash:cloud",
        "deepseek/deepseek-v4-flash",
        "auth",
        "401",
    ),
    T.PAID_PROVIDER_FAILURE: Alert(
        T.PAID_PROVIDER_FAILURE,
        T0,
        ("research",),
        "ollama/glm-5:cloud",
        "openai/gpt-5-mini",
        "quota",
        "insufficient_quota",
    ),
    T.RECOVERY: Alert(
        T.RECOVERY,
        T0,
        ("orchestrator",),
        "ollama/qwen3:8b",
        "ollama/deepseek-v4-flash:cloud",
        reason="probe ok ×2, no real-traffic failure for 300s",
    ),
    T.THROTTLE_COOLDOWN: Alert(
        T.THROTTLE_COOLDOWN,
        T0,
        ("orchestrator", "research"),
        "ollama/deepseek-v4-flash:cloud",
        None,
        "throttle",
        "rate_limit",
        cooldown_until=T0 + 600,
        extra={"cooldown_step": "2 of 4"},
    ),
    T.FLAPPING_START: Alert(
        T.FLAPPING_START,
        T0,
        ("orchestrator",),
        "ollama/deepseek-v4-flash:cloud",
        "ollama/qwen3:8b",
        "throttle",
        flap_score=4.5,
        detail="6 pin flips in 10 min; probe says healthy, real traffic says 429",
    ),
    T.FLAPPING_STOP: Alert(
        T.FLAPPING_STOP,
        T0,
        ("orchestrator",),
        flap_score=0.5,
    ),
    T.OPERATOR_OVERRIDE: Alert(
        T.OPERATOR_OVERRIDE,
        T0,
        ("vision",),
        "google/gemini-3-pro",
        "ollama/llava:13b",
        reason="hand edit of fallback-state.json",
        extra={"hold": "until 18:00"},
    ),
    T.PIN_FILE_REJECTED: Alert(
        T.PIN_FILE_REJECTED,
        T0,
        detail="agents.coder.current_serving: must be a string",
        extra={"quarantined": "fallback-state.json.rejected-20260520T122640Z"},
    ),
    T.CONFIG_REJECTED: Alert(
        T.CONFIG_REJECTED,
        T0,
        detail="openclaw.json: Expecting ',' delimiter: line 40",
    ),
    T.PLUGIN_INACTIVE: Alert(
        T.PLUGIN_INACTIVE,
        T0,
        detail="openclaw.json does not let the pin steer the gateway: "
        "plugins.entries.fallback-pin.hooks.allowConversationAccess is not true",
    ),
    T.AUDIT_TAMPERED: Alert(
        T.AUDIT_TAMPERED,
        T0,
        detail="the log ends at seq 41 but seq 44 was written: records at the end were "
        "deleted",
        extra={"set_aside_as": "audit.jsonl.broken-20260520T122640Z"},
    ),
    T.PROBE_BUDGET_EXHAUSTED: Alert(
        T.PROBE_BUDGET_EXHAUSTED,
        T0,
        extra={"provider": "deepseek", "budget": "30/h"},
    ),
    T.SUPPRESSION_DOMINANT: Alert(
        T.SUPPRESSION_DOMINANT,
        T0,
        detail="14 × RECOVERY|orchestrator|a|b|- (flapping 14)\n"
        "3 × FALLBACK_FIRED|x|a|b|t (dedup 3)",
        extra={"suppressed_last_hour": "17", "sent_last_hour": "2"},
    ),
    T.BREAKER_TRIPPED: Alert(
        T.BREAKER_TRIPPED,
        T0,
        extra={"provider": "deepseek", "spent": "$5.02 of $5.00"},
    ),
    T.BREAKER_RESET: Alert(T.BREAKER_RESET, T0, extra={"provider": "deepseek"}),
    T.CHAINS_CHANGED: Alert(
        T.CHAINS_CHANGED, T0, ("nexus",),
        detail="nexus: primary ollama/glm-5.1:cloud -> deepseek/deepseek-v4-flash <&>",
        extra={"writer": "not the breaker", "agents_changed": "1"},
    ),
    T.DRILL_REPORT: Alert(
        T.DRILL_REPORT, T0,
        detail="alpha: 3/3 working, cross-provider yes: p/a ok 12ms, q/b ok 30ms, r/c ok 9ms\n"
        "beta: 2/3 working, cross-provider NO: p/a ok 12ms, p/d ok 8ms, q/e throttle",
        extra={"agents": "2", "degraded": "1"},
    ),
    T.CHAIN_DEGRADED: Alert(
        T.CHAIN_DEGRADED, T0, ("beta",),
        detail="no working fallback on another provider\np/a ok 12ms, p/d ok 8ms, q/e throttle",
        extra={"working_depth": "2"},
    ),
    T.CHAIN_LINT: Alert(
        T.CHAIN_LINT, T0, ("newbie",),
        detail="new: newbie: chain ['ollama/qwen3:8b'] has no fallback (needs two deep)",
        extra={"findings": "1", "new": "1", "cleared": "0"},
    ),
}


def test_every_transition_type_has_a_distinct_title_and_a_sample() -> None:
    assert set(TITLES) == set(TransitionType)
    assert len(set(TITLES.values())) == len(TITLES)
    assert set(SAMPLES) == set(TransitionType)


@pytest.mark.parametrize("kind", list(TransitionType), ids=str)
def test_card_matches_its_golden_output(kind: TransitionType) -> None:
    card = render(
        SAMPLES[kind], suppressed_since_last=3 if kind.value.startswith("F") else 0, tz=UTC
    )
    path = GOLDEN / f"{kind.value}.html"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(card + "\n", encoding="utf-8")
    assert card + "\n" == path.read_text(encoding="utf-8")
    parse_telegram_html(card)  # valid Telegram HTML


def test_card_shows_event_time_in_the_configured_zone() -> None:
    card = render(SAMPLES[T.FALLBACK_FIRED], suppressed_since_last=0, tz=ZoneInfo("Europe/Berlin"))
    assert "Time: 2026-05-20 14:26:40 CEST" in card


def test_footer_says_how_many_similar_cards_were_suppressed() -> None:
    card = render(SAMPLES[T.RECOVERY], suppressed_since_last=7, tz=UTC)
    assert card.endswith("<i>+7 similar suppressed since the last card</i>")
    assert "suppressed" not in render(SAMPLES[T.RECOVERY], suppressed_since_last=0, tz=UTC)


def test_html_in_gateway_text_is_escaped_not_interpreted() -> None:
    hostile = Alert(
        T.FALLBACK_FIRED,
        T0,
        ("<b>agent</b>",),
        "a&b",
        "<x>",
        "throttle",
        "<script>alert(1)</script>",
        detail="</pre><a href='http://evil'>click</a> & more",
    )
    card = render(hostile, suppressed_since_last=0, tz=UTC)
    assert "<script>" not in card and "<a href" not in card
    assert "&lt;script&gt;" in card and "a&amp;b" in card
    plain = parse_telegram_html(card)
    assert "<script>alert(1)</script>" in plain
    assert "</pre><a href='http://evil'>click</a> & more" in plain


def test_long_detail_is_clipped_before_escaping_so_no_entity_is_cut() -> None:
    detail = "&" * (DETAIL_CLIP * 3)
    card = render(Alert(T.HARD_FAILURE, T0, ("a",), detail=detail), suppressed_since_last=0, tz=UTC)
    plain = parse_telegram_html(card)  # raises on a half entity
    kept = (DETAIL_CLIP - 1) // len("&amp;")
    assert "&" * kept + "…" in plain and "&" * (kept + 1) not in plain
    assert len(card) <= CARD_BUDGET


def test_a_card_too_long_for_telegram_falls_back_to_a_short_card() -> None:
    agents = tuple(f"agent-{i:03d}" for i in range(400))
    big = Alert(T.THROTTLE_COOLDOWN, T0, agents, "m1", None, "throttle", detail="x" * 5000)
    card = render(big, suppressed_since_last=12, tz=UTC)
    assert len(card) <= CARD_BUDGET
    assert "+392 more" in card
    assert "xxxx" not in card  # no detail in the short card
    assert "Agents (400)" in card and "+12 similar suppressed" in card
    parse_telegram_html(card)


_text = st.text(alphabet=st.sampled_from(list("<>&\"'/ab;#x é\n")), max_size=400)


@given(
    agents=st.lists(_text, max_size=60).map(tuple),
    detail=st.none() | _text,
    reason=st.none() | _text,
    model=st.none() | _text,
    extra=st.dictionaries(_text, _text, max_size=20),
    kind=st.sampled_from(list(TransitionType)),
    n=st.integers(min_value=0, max_value=10**6),
)
def test_any_alert_renders_to_valid_telegram_html_within_budget(
    agents: tuple[str, ...],
    detail: str | None,
    reason: str | None,
    model: str | None,
    extra: dict[str, str],
    kind: TransitionType,
    n: int,
) -> None:
    a = Alert(kind, T0, agents, model, model, reason, reason, detail, T0, 1.5, extra=extra)
    card = render(a, suppressed_since_last=n, tz=UTC)
    assert len(card) <= CARD_BUDGET
    parse_telegram_html(card)
