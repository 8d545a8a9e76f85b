"""Operator decisions: holds, releases, set, failback-now, hand edits of the pin file,
rejected pin files and broken gateway configs."""

from __future__ import annotations

from watcher.classify.table import FailureClass
from watcher.core.decide import decide, initial_state
from watcher.core.effects import AppendAudit, WritePins
from watcher.core.events import (
    ChainsChanged,
    FailbackNow,
    Hold,
    PinFileEdited,
    PinFileRejected,
    Release,
    SetServing,
    Tick,
)
from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.pins.view import to_pinfile

from .sim import T0, alerts_of, failed, moves, probe

P, F1, F2 = "ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash", "ollama/qwen3:8b"
POLICY = Policy()


def _throttled() -> State:
    """``a`` and ``b`` share primary P, which is throttled (cooldown 5 min)."""
    state = initial_state({"a": [P, F1, F2], "b": [P, F2]}, POLICY)
    return decide(state, failed(P, FailureClass.THROTTLE, ts=T0, next=F1), T0, POLICY).state


def test_hold_pins_the_agent_until_released_and_release_resumes_policy() -> None:
    state = initial_state({"a": [P, F1, F2]}, POLICY)
    held = decide(state, Hold("a", F2, actor="alice", note="testing F2"), T0, POLICY)
    assert held.sentence == (
        f"alice held a on {F2} until released; OPERATOR_OVERRIDE a: {P} -> {F2}."
    )
    (card,) = alerts_of(held)
    assert card.type.value == "OPERATOR_OVERRIDE"
    assert card.extra == {"actor": "alice", "action": "hold", "note": "testing F2"}
    assert held.state.agents["a"].serving == F2
    # Evidence about P does not move a held agent.
    after = decide(held.state, failed(P, FailureClass.SERVER_ERROR, ts=T0 + 1), T0 + 1, POLICY)
    assert after.state.agents["a"].serving == F2
    assert alerts_of(after) == []
    released = decide(after.state, Release("a", actor="alice"), T0 + 2, POLICY)
    assert moves(alerts_of(released)) == [("OPERATOR_OVERRIDE", ("a",), F2, F1)]
    assert released.state.agents["a"].hold is None
    audits = [e for e in released.effects if isinstance(e, AppendAudit)]
    assert audits[0].data["actor"] == "alice" and audits[0].data["cause"] == "operator"


def test_hold_with_until_expires_on_a_tick() -> None:
    state = initial_state({"a": [P, F1]}, POLICY)
    state = decide(state, Hold("a", F1, actor="bob", until=T0 + 600), T0, POLICY).state
    assert decide(state, Tick(), T0 + 599, POLICY).state.agents["a"].serving == F1
    expired = decide(state, Tick(), T0 + 600, POLICY)
    assert expired.state.agents["a"].serving == P
    (card,) = alerts_of(expired)
    assert (card.type.value, card.extra["action"]) == ("OPERATOR_OVERRIDE", "expired")


def test_hold_on_a_model_outside_the_chain_is_refused_and_audited() -> None:
    state = initial_state({"a": [P, F1]}, POLICY)
    refused = decide(state, Hold("a", "openai/gpt-5.5", actor="eve"), T0, POLICY)
    assert refused.sentence.startswith("refused: openai/gpt-5.5 is not in a's chain")
    assert refused.state is state
    assert [type(e).__name__ for e in refused.effects] == ["AppendAudit"]
    assert decide(state, Release("zz", actor="eve"), T0, POLICY).sentence == (
        "refused: no agent 'zz'."
    )


def test_setting_the_primary_by_hand_clears_its_cooldown_and_moves_sharers_back() -> None:
    state = _throttled()
    assert state.models[P].in_cooldown(T0 + 10)
    done = decide(state, SetServing("a", P, actor="alice"), T0 + 10, POLICY)
    assert done.state.models[P].cooldown_until is None
    assert done.state.models[P].cooldown_level == 0  # first throttle: level stays as it was
    assert not done.state.models[P].failing
    assert moves(alerts_of(done)) == [
        ("OPERATOR_OVERRIDE", ("a",), F1, P),
        ("RECOVERY", ("b",), F2, P),
    ]
    assert done.sentence == (
        f"alice set a to {P}; OPERATOR_OVERRIDE a: {F1} -> {P}; RECOVERY b: {F2} -> {P}."
    )


def test_setting_a_fallback_by_hand_is_a_hold() -> None:
    state = initial_state({"a": [P, F1, F2]}, POLICY)
    done = decide(state, SetServing("a", F2, actor="alice"), T0, POLICY)
    hold = done.state.agents["a"].hold
    assert hold is not None and (hold.model, hold.by, hold.until) == (F2, "alice", None)


def test_failback_now_needs_a_good_probe_of_the_primary() -> None:
    state = _throttled()
    bad = probe(P, False, ts=T0 + 20, failure_class=FailureClass.THROTTLE)
    refused = decide(state, FailbackNow("a", actor="alice", probe=bad), T0 + 21, POLICY)
    assert refused.sentence == f"refused: probe of {P} failed (throttle); a stays."
    assert refused.state is state
    good = probe(P, True, ts=T0 + 30)
    done = decide(state, FailbackNow("a", actor="alice", probe=good), T0 + 31, POLICY)
    assert done.state.agents["a"].serving == P
    audits = [e.data for e in done.effects if isinstance(e, AppendAudit)]
    assert audits[0]["evidence"] == good.probe_id


def test_hand_edit_setting_a_fallback_is_adopted_as_a_hold() -> None:
    state = initial_state({"a": [P, F1, F2], "b": [P, F2]}, POLICY)
    pins = to_pinfile(state, T0)
    edited = pins.model_copy(
        update={
            "agents": {
                **pins.agents,
                "a": pins.agents["a"].model_copy(
                    update={"current_serving": F2, "in_fallback": True}
                ),
            }
        }
    )
    done = decide(state, PinFileEdited(edited), T0 + 5, POLICY)
    assert done.sentence.startswith(f"adopted a hand edit of the pin file: a -> {F2}")
    hold = done.state.agents["a"].hold
    assert hold is not None and (hold.model, hold.by) == (F2, "file")
    assert any(isinstance(e, WritePins) for e in done.effects)
    assert moves(alerts_of(done)) == [("OPERATOR_OVERRIDE", ("a",), P, F2)]


def test_hand_edit_setting_the_primary_back_counts_it_healthy() -> None:
    state = _throttled()
    pins = to_pinfile(state, T0 + 5)
    assert pins.agents["a"].transient_throttle_until is not None
    agents = dict(pins.agents)
    for agent_id in ("a", "b"):
        agents[agent_id] = agents[agent_id].model_copy(
            update={"current_serving": P, "in_fallback": False}
        )
    done = decide(state, PinFileEdited(pins.model_copy(update={"agents": agents})), T0 + 6, POLICY)
    assert {a.serving for a in done.state.agents.values()} == {P}
    assert done.state.models[P].cooldown_until is None
    assert to_pinfile(done.state, T0 + 6).agents["a"].transient_throttle_until is None


def test_rejected_pin_file_is_announced_and_the_last_good_pins_rewritten() -> None:
    state = _throttled()
    done = decide(
        state,
        PinFileRejected("agents.a.current_serving: not in chain", "/s/pins.rejected-1"),
        T0 + 9,
        POLICY,
    )
    (card,) = alerts_of(done)
    assert card.type.value == "PIN_FILE_REJECTED"
    assert card.detail == "agents.a.current_serving: not in chain"
    assert card.extra == {"quarantined_to": "/s/pins.rejected-1"}
    assert any(isinstance(e, WritePins) for e in done.effects)
    assert done.state is state


def test_broken_gateway_config_keeps_the_last_good_chains() -> None:
    state = _throttled()
    done = decide(state, ChainsChanged({}, error="not valid JSON5: line 3"), T0 + 1, POLICY)
    (card,) = alerts_of(done)
    assert (card.type.value, card.detail) == ("CONFIG_REJECTED", "not valid JSON5: line 3")
    assert done.state is state
    assert done.sentence == (
        "gateway config rejected; last good chains kept; CONFIG_REJECTED raised."
    )
    empty = decide(state, ChainsChanged({"a": ()}), T0 + 1, POLICY)
    assert [a.type.value for a in alerts_of(empty)] == ["CONFIG_REJECTED"]


def test_changed_chains_keep_health_and_pins_that_still_make_sense() -> None:
    state = _throttled()  # a on F1, b on F2, P throttled
    done = decide(state, ChainsChanged({"a": (P, F2), "c": (P, F1)}), T0 + 1, POLICY)
    assert set(done.state.agents) == {"a", "c"}
    assert done.state.agents["a"].serving == F2  # F1 left its chain
    assert done.state.agents["c"].serving == F1  # new agent, P is still down
    assert done.state.models[P].in_cooldown(T0 + 1)
    # The edit moved a off F1: said with a card and an audited move, besides the
    # CHAINS_CHANGED card that says what changed (watcher.core.drift).
    card, changed = alerts_of(done)
    assert (card.type.value, card.agents, card.from_model, card.to_model) == (
        "OPERATOR_OVERRIDE", ("a",), F1, F2)
    assert card.extra == {"actor": "openclaw.json", "action": "chain_changed"}
    assert changed.type.value == "CHAINS_CHANGED" and changed.agents == ("a", "b", "c")
    move, _twin, audit = [e for e in done.effects if isinstance(e, AppendAudit)]
    assert move.type == "OPERATOR_OVERRIDE" and move.data["actor"] == "openclaw.json"
    assert move.data["before"] == F1 and move.data["after"] == F2
    assert "no pin changed" not in done.sentence
    assert audit.type == "CHAINS_CHANGED"
    assert audit.data["added"] == ["c"] and audit.data["removed"] == ["b"]
    assert audit.data["moved"] == {"a": [F1, F2]}


def test_dropping_a_held_model_from_the_chain_says_the_hold_is_gone() -> None:
    state = _throttled()  # a on F1, b on F2, P throttled
    held = decide(state, Hold("a", F1, None, "keep", "alice"), T0 + 1, POLICY).state
    done = decide(held, ChainsChanged({"a": (P, F2), "b": (P, F2)}), T0 + 2, POLICY)
    assert done.state.agents["a"].hold is None and done.state.agents["a"].serving == F2
    card, _changed = alerts_of(done)
    assert card.extra["hold_dropped"] == F1 and card.from_model == F1


def test_a_hand_edited_hold_is_audited_with_its_author_and_note() -> None:
    from watcher.pins.schema import Hold as PinHold

    state = initial_state({"a": [P, F1, F2], "b": [P, F2]}, POLICY)
    pins = to_pinfile(state, T0)
    held = pins.agents["a"].model_copy(update={
        "current_serving": F2, "in_fallback": True,
        "hold": PinHold(model=F2, by="alice", note="provider maintenance")})
    done = decide(state, PinFileEdited(pins.model_copy(update={"agents": {**pins.agents,
                                                                        "a": held}})),
                  T0 + 5, POLICY)
    (move,) = [e.data for e in done.effects if isinstance(e, AppendAudit)]
    assert (move["actor"], move["note"]) == ("alice", "provider maintenance")
    assert done.state.agents["a"].hold is not None
    assert done.state.agents["a"].hold.by == "alice"


def test_deleting_an_agent_from_the_pin_file_is_undone_out_loud() -> None:
    state = initial_state({"a": [P, F1, F2], "b": [P, F2]}, POLICY)
    pins = to_pinfile(state, T0)
    gone = pins.model_copy(update={"agents": {"a": pins.agents["a"]}})
    done = decide(state, PinFileEdited(gone, actor="file"), T0 + 5, POLICY)
    (card,) = alerts_of(done)
    assert card.type.value == "PIN_FILE_REJECTED" and card.agents == ("b",)
    assert "deleted from the pin file: restored" in (card.detail or "")
    assert [e.type for e in done.effects if isinstance(e, AppendAudit)] == ["PIN_FILE_REJECTED"]
    assert any(isinstance(e, WritePins) for e in done.effects)  # b is written back
    assert "b" in done.state.agents and "deleted by hand" in done.sentence
