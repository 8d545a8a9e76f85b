"""What counts as evidence, and what the state and the pin file show for it."""

from __future__ import annotations

import json

import pytest

from watcher.classify.table import FailureClass
from watcher.core.decide import decide, initial_state, probe_targets
from watcher.core.effects import AppendAudit, RequestProbes, WritePins
from watcher.core.events import LaneHintEvidence, Tick
from watcher.core.policy import Policy
from watcher.core.state import from_json, to_json
from watcher.parse.records import Decision, LaneHint
from watcher.pins.schema import dumps, iso, loads
from watcher.pins.view import to_pinfile

from .sim import T0, Sim, alerts_of, failed, other, probe, succeeded

P, PAID, LOCAL = "ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash", "ollama/qwen3:8b"
CHAINS = {"orchestrator": [P, PAID, LOCAL], "coder": [P, LOCAL]}


@pytest.mark.parametrize(
    "event",
    [
        other(Decision.SKIP_CANDIDATE, P, ts=T0, reason="rate_limit"),
        other(Decision.PROBE_COOLDOWN_CANDIDATE, P, ts=T0, reason="billing"),
        failed(P, FailureClass.GATEWAY_LOCAL, ts=T0, reason="unknown"),
        failed(P, FailureClass.FORMAT, ts=T0, reason="context_overflow"),
    ],
    ids=["skip", "probe_cooldown", "gateway_local", "format"],
)
def test_lines_that_say_nothing_about_the_provider_change_nothing(event: object) -> None:
    state = initial_state(CHAINS)
    done = decide(state, event, T0, Policy())  # type: ignore[arg-type]
    assert done.state is state
    assert done.effects == ()
    assert "not evidence about the provider" in done.sentence


def test_unknown_models_are_ignored() -> None:
    state = initial_state(CHAINS)
    done = decide(state, failed("zz/unknown", FailureClass.THROTTLE, ts=T0), T0, Policy())
    assert done.state is state and done.effects == ()
    assert done.sentence == (
        "candidate_failed of zz/unknown: in no agent's chain, ignored; no pin changed."
    )


def test_a_missing_class_counts_as_unknown_failure() -> None:
    done = decide(initial_state(CHAINS), failed(P, None, ts=T0, next=PAID), T0, Policy())
    assert done.state.models[P].failure_class is FailureClass.UNKNOWN
    assert done.state.agents["coder"].serving == LOCAL


def test_suppressed_duplicates_count_toward_fall() -> None:
    policy = Policy(fall=3)
    state = initial_state(CHAINS)
    one = decide(state, failed(P, FailureClass.AUTH, ts=T0), T0, policy)
    assert one.state.agents["coder"].serving == P
    assert "1/3 failures: still up" in one.sentence
    burst = decide(state, failed(P, FailureClass.AUTH, ts=T0, duplicates=2), T0, policy)
    assert burst.state.agents["coder"].serving == LOCAL


def test_paid_cards_fire_on_the_edge_not_on_every_request() -> None:
    sim = Sim(CHAINS, Policy(paid_providers=frozenset({"deepseek"})))
    sim.apply(failed(P, FailureClass.SERVER_ERROR, ts=T0, next=PAID))
    for i in range(5):
        sim.apply(succeeded(PAID, ts=T0 + i, requested=P))
    sim.apply(failed(PAID, FailureClass.BILLING, ts=T0 + 10, next=LOCAL, reason="billing"))
    sim.apply(failed(PAID, FailureClass.BILLING, ts=T0 + 11, next=LOCAL, reason="billing"))
    assert sim.types() == [
        "FALLBACK_FIRED",
        "PAID_PROVIDER_SUCCESS",
        "PAID_PROVIDER_FAILURE",
        "FALLBACK_FIRED",
    ]
    paid_fail = sim.alerts[2]
    assert paid_fail.to_model == PAID and paid_fail.failure_class == "billing"
    assert paid_fail.agents == ("orchestrator",)


def test_real_traffic_success_outside_cooldown_brings_a_model_back_at_once() -> None:
    policy = Policy()
    state = decide(initial_state(CHAINS), failed(P, FailureClass.TIMEOUT, ts=T0), T0, policy).state
    done = decide(state, succeeded(P, ts=T0 + 30), T0 + 30, policy)
    assert done.sentence.startswith(f"{P} served real traffic; {P} is up again")
    assert {a.serving for a in done.state.agents.values()} == {P}


def test_real_traffic_success_inside_cooldown_is_recorded_only() -> None:
    policy = Policy()
    state = decide(initial_state(CHAINS), failed(P, FailureClass.THROTTLE, ts=T0), T0, policy).state
    done = decide(state, succeeded(P, ts=T0 + 30), T0 + 30, policy)
    assert f"inside its cooldown until {iso(T0 + 300)}: still down" in done.sentence
    assert done.state.agents["coder"].serving == LOCAL


def test_catch_up_evidence_updates_state_and_marks_its_cards() -> None:
    done = decide(
        initial_state(CHAINS),
        failed(P, FailureClass.SERVER_ERROR, ts=T0 - 3600, next=PAID, catch_up=True),
        T0,
        Policy(),
    )
    assert done.state.agents["coder"].serving == LOCAL
    cards = alerts_of(done)
    assert cards and all(c.catch_up for c in cards)
    assert all(c.ts == T0 - 3600 for c in cards)
    audits = [e for e in done.effects if isinstance(e, AppendAudit)]
    assert audits[0].data["catch_up"] is True


def test_a_recent_lane_line_attributes_the_card() -> None:
    policy = Policy()
    state = initial_state(CHAINS)
    lane = LaneHint(agent_id="coder", lane="session:agent:coder:main", ts=T0 - 2)
    hinted = decide(state, LaneHintEvidence(lane), T0 - 2, policy)
    assert not any(isinstance(e, WritePins) for e in hinted.effects)
    done = decide(hinted.state, failed(P, FailureClass.TIMEOUT, ts=T0), T0, policy)
    assert all(c.extra.get("attributed_to") == "coder" for c in alerts_of(done))
    late = decide(hinted.state, failed(P, FailureClass.TIMEOUT, ts=T0 + 600), T0 + 600, policy)
    assert all("attributed_to" not in c.extra for c in alerts_of(late))


def test_probes_are_requested_once_per_interval_and_never_inside_cooldown() -> None:
    policy = Policy()
    state = decide(initial_state(CHAINS), failed(P, FailureClass.THROTTLE, ts=T0), T0, policy).state
    assert probe_targets(state, T0 + 299, policy) == []
    assert probe_targets(state, T0 + 300, policy) == [P]
    first = decide(state, Tick(), T0 + 300, policy)
    assert [e for e in first.effects if isinstance(e, RequestProbes)] == [RequestProbes((P,))]
    again = decide(first.state, Tick(), T0 + 315, policy)
    assert not any(isinstance(e, RequestProbes) for e in again.effects)
    due = decide(again.state, Tick(), T0 + 360, policy)
    assert any(isinstance(e, RequestProbes) for e in due.effects)


def test_held_agents_do_not_ask_for_probes() -> None:
    from watcher.core.events import Hold

    policy = Policy()
    state = decide(
        initial_state({"a": [P, LOCAL]}), failed(P, FailureClass.TIMEOUT, ts=T0), T0, policy
    ).state
    state = decide(state, Hold("a", LOCAL, actor="op"), T0, policy).state
    assert probe_targets(state, T0 + 60, policy) == []


def test_state_round_trips_through_json_exactly() -> None:
    sim = Sim(CHAINS, Policy(paid_providers=frozenset({"deepseek"})))
    sim.apply(failed(P, FailureClass.THROTTLE, ts=T0, next=PAID, retry_after_s=900))
    sim.apply(LaneHintEvidence(LaneHint("coder", "session:agent:coder:x", ts=T0)))
    sim.apply(succeeded(PAID, ts=T0 + 1))
    from watcher.core.events import Hold

    sim.apply(Hold("coder", LOCAL, actor="op", until=T0 + 3600, note="n"))
    sim.apply(probe(P, True, ts=T0 + 950), T0 + 950)
    data = json.loads(json.dumps(to_json(sim.state)))
    assert from_json(data) == sim.state
    with pytest.raises(ValueError, match="schema"):
        from_json({**data, "schema": 99})
    broken = json.loads(json.dumps(data))
    del broken["agents"]["coder"]["serving"]
    with pytest.raises(ValueError, match="serving"):
        from_json(broken)


def test_pin_file_view_is_valid_and_shows_throttle_and_health() -> None:
    policy = Policy()
    state = decide(
        initial_state(CHAINS), failed(P, FailureClass.THROTTLE, ts=T0, next=PAID), T0, policy
    ).state
    pins = to_pinfile(state, T0 + 10)
    assert loads(dumps(pins)) == pins
    orchestrator = pins.agents["orchestrator"]
    assert orchestrator.primary == P
    assert orchestrator.current_serving == PAID and orchestrator.in_fallback
    assert orchestrator.transient_throttle_until == iso(T0 + 300)
    assert orchestrator.failure_class == "throttle"
    assert orchestrator.fallback_since == iso(T0)
    assert pins.models[P].state == "throttled"
    assert pins.models[P].cooldown_until == iso(T0 + 300)
    assert pins.models[LOCAL].state == "healthy"
    assert pins.updated_at == iso(T0 + 10)
    later = to_pinfile(state, T0 + 301)
    assert later.models[P].state == "failing"
    assert later.agents["orchestrator"].transient_throttle_until is None


def test_the_pin_file_is_refreshed_when_a_cooldown_runs_out() -> None:
    policy = Policy()
    state = decide(initial_state(CHAINS), failed(P, FailureClass.THROTTLE, ts=T0), T0, policy).state
    inside = decide(state, Tick(), T0 + 200, policy)
    assert not any(isinstance(e, WritePins) for e in inside.effects)
    out = decide(inside.state, Tick(), T0 + 305, policy)
    assert any(isinstance(e, WritePins) for e in out.effects)
    again = decide(out.state, Tick(), T0 + 380, policy)
    assert any(isinstance(e, RequestProbes) for e in again.effects)
    assert not any(isinstance(e, WritePins) for e in again.effects)
