"""Operator mutes and refused access: pure decisions, audited, nothing hidden."""

from __future__ import annotations

from watcher.core.decide import decide, initial_state
from watcher.core.effects import AppendAudit, MuteAlerts, WritePins
from watcher.core.events import AccessRefused, MuteCards
from watcher.core.policy import Policy

from .sim import T0, alerts_of

P, F1 = "ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash"
POLICY = Policy()
KEY = f"FALLBACK_FIRED|a|{P}|{F1}|throttle"


def test_a_mute_asks_the_shell_to_mute_the_key_and_is_audited_and_announced() -> None:
    state = initial_state({"a": [P, F1]}, POLICY)
    muted = decide(state, MuteCards(KEY, T0 + 1800, actor="telegram:42"), T0, POLICY)
    assert muted.state == state  # a mute changes no pin
    assert MuteAlerts(KEY, T0 + 1800) in muted.effects
    assert not any(isinstance(e, WritePins) for e in muted.effects)
    audits = {e.type: e.data for e in muted.effects if isinstance(e, AppendAudit)}
    assert audits["CARDS_MUTED"]["actor"] == "telegram:42"
    assert audits["CARDS_MUTED"]["key"] == KEY
    (card,) = alerts_of(muted)
    assert card.type.value == "OPERATOR_OVERRIDE"
    assert card.extra["action"] == "mute" and card.extra["key"] == KEY
    assert "telegram:42 muted" in muted.sentence


def test_a_mute_that_is_already_over_is_refused_and_audited() -> None:
    state = initial_state({"a": [P, F1]}, POLICY)
    refused = decide(state, MuteCards(KEY, T0 - 1, actor="telegram:42"), T0, POLICY)
    assert not any(isinstance(e, MuteAlerts) for e in refused.effects)
    (audit,) = [e for e in refused.effects if isinstance(e, AppendAudit)]
    assert audit.type == "OPERATOR_REFUSED" and audit.data["actor"] == "telegram:42"
    assert alerts_of(refused) == []


def test_refused_access_is_only_audited_with_who_and_why() -> None:
    state = initial_state({"a": [P, F1]}, POLICY)
    ev = AccessRefused("telegram:666", action="/hold a", why="not allowlisted", chat="-100")
    decided = decide(state, ev, T0, POLICY)
    assert decided.state == state
    (audit,) = decided.effects
    assert isinstance(audit, AppendAudit) and audit.type == "ACCESS_REFUSED"
    assert audit.data["actor"] == "telegram:666"
    assert audit.data["why"] == "not allowlisted" and audit.data["chat"] == "-100"
    assert decided.sentence == "refused telegram:666 (/hold a): not allowlisted."
