"""Spend accounting and the day boundary, with time passed in."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from watcher.breaker.config import parse_config
from watcher.breaker.cut import Cut
from watcher.breaker.ledger import (
    Ledger,
    Trip,
    account,
    due_resets,
    due_trips,
    local_day,
    next_reset,
    roll,
    with_trip,
)
from watcher.parse.records import Decision, FallbackDecision, ModelRef

BERLIN = ZoneInfo("Europe/Berlin")
CONFIG = parse_config("""
[breaker]
gateway_config = "/x/openclaw.json"
timezone = "Europe/Berlin"
[breaker.providers.openai]
call_price = 0.10
failed_call_factor = 0.5
daily_cap = 1.00
[breaker.providers.openai.model_prices]
"gpt-5.5" = 0.25
[breaker.providers.openrouter]
daily_calls = 3
[breaker.providers.ollama]
paid = false
""")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def decision(kind: Decision, candidate: str, dupes: int = 0) -> FallbackDecision:
    return FallbackDecision(
        decision=kind, requested=ModelRef.parse("ollama/kimi-k2.5:cloud"),
        candidate=ModelRef.parse(candidate), reason="unknown", next=None,
        suppressed_duplicates=dupes,
    )


SERVED = Decision.CANDIDATE_SUCCEEDED
FAILED = Decision.CANDIDATE_FAILED


def test_served_and_failed_calls_are_priced_per_model_with_duplicates_counted() -> None:
    ledger = Ledger.empty(at("2026-05-20T09:00:00"), BERLIN)
    ledger = account(ledger, decision(SERVED, "openai/gpt-5.5"), "c1", at("2026-05-20T09:01:00"),
                     CONFIG)
    ledger = account(ledger, decision(SERVED, "openai/gpt-5.2"), "c2", at("2026-05-20T09:02:00"),
                     CONFIG)
    # One auth failure line standing for 1 + 3 suppressed duplicates, at half price.
    ledger = account(ledger, decision(FAILED, "openai/gpt-5.2", dupes=3), "c3",
                     at("2026-05-20T09:03:00"), CONFIG)
    spend = ledger.spend_of("openai")
    assert (spend.calls_ok, spend.calls_failed) == (2, 4)
    assert abs(spend.cost - (0.25 + 0.10 + 4 * 0.05)) < 1e-9


def test_skips_probes_and_unpaid_providers_cost_nothing() -> None:
    ledger = Ledger.empty(at("2026-05-20T09:00:00"), BERLIN)
    for i, rec in enumerate([decision(Decision.SKIP_CANDIDATE, "openai/gpt-5.5"),
                             decision(Decision.PROBE_COOLDOWN_CANDIDATE, "openai/gpt-5.5"),
                             decision(SERVED, "ollama/qwen3:8b"),
                             decision(SERVED, "groq/llama")]):
        ledger = account(ledger, rec, f"k{i}", at("2026-05-20T09:00:01"), CONFIG)
    assert ledger.spend == {}


def test_an_entry_replayed_after_a_restart_is_counted_once() -> None:
    ledger = Ledger.empty(at("2026-05-20T09:00:00"), BERLIN)
    rec = decision(SERVED, "openai/gpt-5.5")
    for _ in range(3):
        ledger = account(ledger, rec, "cursor-1", at("2026-05-20T09:01:00"), CONFIG)
    ledger = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    ledger = account(ledger, rec, "cursor-1", at("2026-05-20T09:01:00"), CONFIG)
    assert ledger.spend_of("openai").calls_ok == 1


def test_the_cap_trips_when_reached_in_money_or_in_calls() -> None:
    ledger = Ledger.empty(at("2026-05-20T09:00:00"), BERLIN)
    for i in range(3):
        ledger = account(ledger, decision(SERVED, "openai/gpt-5.5"), f"o{i}",
                         at("2026-05-20T10:00:00"), CONFIG)
    assert due_trips(ledger, CONFIG) == []  # 0.75 of 1.00
    ledger = account(ledger, decision(SERVED, "openai/gpt-5.5"), "o3",
                     at("2026-05-20T10:00:01"), CONFIG)
    assert [p for p, _ in due_trips(ledger, CONFIG)] == ["openai"]  # 1.00 reached
    for i in range(3):
        ledger = account(ledger, decision(FAILED, "openrouter/openrouter/owl-alpha"), f"r{i}",
                         at("2026-05-20T10:00:02"), CONFIG)
    due = dict(due_trips(ledger, CONFIG))
    assert due["openrouter"] == "3 calls of a 3-call daily cap"


def test_spend_starts_over_at_local_midnight_not_utc_midnight() -> None:
    ledger = Ledger.empty(at("2026-05-20T23:00:00"), BERLIN)
    rec = decision(SERVED, "openai/gpt-5.5")
    # 00:30 in Berlin is still 22:30 UTC of the day before: a new local day all the same.
    ledger = account(ledger, rec, "a", at("2026-05-20T23:59:59"), CONFIG)
    ledger = account(ledger, rec, "b", at("2026-05-21T00:30:00"), CONFIG)
    assert ledger.day == "2026-05-21"
    assert ledger.spend_of("openai").calls_ok == 1
    # A late entry of the finished day no longer counts.
    ledger = account(ledger, rec, "c", at("2026-05-20T23:59:00"), CONFIG)
    assert ledger.spend_of("openai").calls_ok == 1


def test_a_trip_is_reset_at_the_next_local_midnight_across_dst() -> None:
    # 2026-03-29 is 23 hours long in Berlin (clocks jump 02:00 -> 03:00).
    tripped_at = at("2026-03-29T01:30:00")
    assert next_reset(tripped_at, BERLIN) == at("2026-03-30T00:00:00")
    assert next_reset(tripped_at, BERLIN) - tripped_at == 21.5 * 3600
    ledger = with_trip(Ledger.empty(tripped_at, BERLIN),
                       Trip("openai", local_day(tripped_at, BERLIN), tripped_at, "cap",
                            cut=None))
    assert due_resets(ledger, at("2026-03-29T23:59:59"), BERLIN) == []
    ledger = with_trip(ledger, Trip("openai", "2026-03-29", tripped_at, "cap",
                                    cut=Cut("openai")))
    assert due_resets(ledger, at("2026-03-29T23:59:59"), BERLIN) == []
    assert [t.provider for t in due_resets(ledger, at("2026-03-30T00:00:00"), BERLIN)] == [
        "openai"]
    rolled = roll(ledger, at("2026-03-30T00:00:00"), BERLIN)
    assert rolled.day == "2026-03-30" and rolled.trips == ledger.trips


def test_a_provider_cut_today_is_not_tripped_again_today() -> None:
    ledger = Ledger.empty(at("2026-05-20T09:00:00"), BERLIN)
    for i in range(5):
        ledger = account(ledger, decision(SERVED, "openai/gpt-5.5"), f"o{i}",
                         at("2026-05-20T10:00:00"), CONFIG)
    ledger = with_trip(ledger, Trip("openai", "2026-05-20", 0.0, "cap", cut=Cut("openai")))
    assert due_trips(ledger, CONFIG) == []
