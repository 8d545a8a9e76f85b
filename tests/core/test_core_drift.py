"""Config drift in the pure core: the per-agent diff, the CHAINS_CHANGED card naming
its writer, and chain-check findings announced once each way."""

from __future__ import annotations

from typing import Any

from watcher.core.decide import decide, initial_state
from watcher.core.drift import NOT_THE_BREAKER, chain_diff
from watcher.core.effects import AppendAudit, EnqueueAlert
from watcher.core.events import ChainLint, ChainsChanged, DrillReported, DrillSummary
from watcher.core.policy import Policy
from watcher.core.transitions import TransitionType

T0 = 1_796_000_000.0
A, B, C, D = "p/a", "q/b", "r/c", "s/d"


def test_the_diff_names_each_kind_of_change() -> None:
    old = {"x": [A, B, C], "y": [A, B, C], "z": [A, B], "gone": [A, B]}
    new = {"x": [B, A, C], "y": [A, C, B], "z": [A, D], "new": [C, D]}
    assert chain_diff(old, new) == {
        "x": [f"primary {A} -> {B}", f"fallbacks added: {A}", f"fallbacks removed: {B}"],
        "y": [f"fallbacks reordered: {C} > {B}"],
        "z": [f"fallbacks added: {D}", f"fallbacks removed: {B}"],
        "gone": ["removed from openclaw.json"],
        "new": [f"added with chain {C} > {D}"],
    }
    assert chain_diff(old, old) == {}


def test_a_chain_change_is_one_card_naming_the_writer_and_the_moved_pin() -> None:
    state = initial_state({"x": [A, B, C], "y": [B, C]})
    for writer, named in (("failover-breaker", "failover-breaker"), (None, NOT_THE_BREAKER)):
        done = decide(state, ChainsChanged({"x": (B, C), "y": (B, C)}, writer=writer), T0,
                      Policy())
        alerts = [e.alert for e in done.effects if isinstance(e, EnqueueAlert)]
        changed = [a for a in alerts if a.type is TransitionType.CHAINS_CHANGED]
        assert len(changed) == 1 and changed[0].extra["writer"] == named
        assert f"x: primary {A} -> {B}" in (changed[0].detail or "")
        assert f"x's pin moved: {A} -> {B}" in (changed[0].detail or "")
        audits = [e for e in done.effects if isinstance(e, AppendAudit)
                  and e.type == "CHAINS_CHANGED" and "writer" in e.data]
        assert audits and audits[0].data["writer"] == named
        assert f"changed by {named}" in done.sentence


def test_findings_are_announced_once_when_new_and_once_when_cleared() -> None:
    state = initial_state({"x": [A, B]})
    base = decide(state, ChainLint(("x: one deep",), baseline=True), T0, Policy())
    assert base.state.lint == ("x: one deep",) and not base.effects  # first start
    same = decide(base.state, ChainLint(("x: one deep",)), T0 + 1, Policy())
    assert same.state is base.state and not same.effects
    more = decide(base.state, ChainLint(("x: one deep", "x: one provider")), T0 + 2, Policy())
    (alert,) = [e.alert for e in more.effects if isinstance(e, EnqueueAlert)]
    assert alert.type is TransitionType.CHAIN_LINT and alert.detail == "new: x: one provider"
    clear = decide(more.state, ChainLint(()), T0 + 3, Policy())
    (alert,) = [e.alert for e in clear.effects if isinstance(e, EnqueueAlert)]
    assert alert.detail == "cleared: x: one deep\ncleared: x: one provider"
    assert clear.state.lint == ()


def _summary(agent: str, depth: int, cross: bool) -> DrillSummary:
    return DrillSummary(agent, depth, 3, cross, depth < 2 or not cross, f"{agent} line")


def test_a_drill_reports_always_and_says_degraded_once_when_it_is_lost() -> None:
    state = initial_state({"x": [A, B, C], "y": [A, C, D]})
    sound = DrillReported((_summary("x", 3, True), _summary("y", 3, True)))
    lost = DrillReported((_summary("x", 3, True), _summary("y", 2, False)))

    def types(done: Any) -> list[TransitionType]:
        return [e.alert.type for e in done.effects if isinstance(e, EnqueueAlert)]

    first = decide(state, sound, T0, Policy())
    assert types(first) == [TransitionType.DRILL_REPORT]
    assert first.state.drill is not None and first.state.drill.sound("y")
    second = decide(first.state, lost, T0 + 1, Policy())
    assert types(second) == [TransitionType.DRILL_REPORT, TransitionType.CHAIN_DEGRADED]
    degraded = [e.alert for e in second.effects if isinstance(e, EnqueueAlert)][1]
    assert degraded.agents == ("y",) and "no working fallback" in (degraded.detail or "")
    again = decide(second.state, lost, T0 + 2, Policy())
    assert types(again) == [TransitionType.DRILL_REPORT]  # still degraded: said once
    # A degraded agent at the very first drill is said too.
    assert TransitionType.CHAIN_DEGRADED in types(decide(state, lost, T0, Policy()))
