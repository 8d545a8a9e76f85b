"""Half-open trials: while the plugin steers, a probe success opens a trial, and only
the trial turn's real outcome brings a primary back. Lines go through the production
parser and classify stage; probes are the core's ProbeResult."""

from __future__ import annotations

from typing import Any

from watcher.classify.table import FailureClass
from watcher.core.decide import decide, initial_state, probe_targets
from watcher.core.effects import EnqueueAlert, WritePins
from watcher.core.events import Hold, Tick
from watcher.core.evidence import ProbeResult
from watcher.core.policy import Policy
from watcher.core.state import State, check_invariants, from_json, to_json
from watcher.core.transitions import TransitionType
from watcher.pins.view import to_pinfile

from .sim import probe
from .test_core_plugin import CHAINS, FB, FB2, STEERING, T0, P, decision, feed, outcome

POLICY = Policy()


def pinned_away(*, steering: bool = True) -> State:
    """ops and web pinned away from P after a real 429 (5 min cooldown); the plugin's
    state line read first when ``steering``."""
    lines = [STEERING] if steering else []
    state, _, _ = feed(initial_state(CHAINS), *lines,
                       outcome("ops", [(P, False, 429), (FB, True, None)]))
    assert state.agents["ops"].serving == FB and state.agents["web"].serving == FB2
    assert state.models[P].cooldown_until is not None
    return state


AFTER = T0 + 400  # the 5-minute cooldown (with jitter) is over


def apply(state: State, event: Any, at: float) -> tuple[State, Any]:
    done = decide(state, event, at, POLICY)
    assert not check_invariants(done.state, at), check_invariants(done.state, at)
    return done.state, done


def test_a_probe_success_opens_a_trial_for_the_busiest_agent_and_moves_no_pin() -> None:
    state = pinned_away()
    # web ran a turn more recently than ops: web's next turn answers soonest.
    state, _, _ = feed(state, outcome("web", [(FB2, True, None)], pinned=FB2), at=T0 + 300)
    state, done = apply(state, probe(P, True, ts=AFTER), AFTER)
    assert state.models[P].failing and state.models[P].trial_agent == "web"
    assert (state.agents["ops"].serving, state.agents["web"].serving) == (FB, FB2)
    assert any(isinstance(e, WritePins) for e in done.effects)
    assert not [e for e in done.effects if isinstance(e, EnqueueAlert)]
    assert "half-open" in done.sentence
    pins = to_pinfile(state, AFTER)
    trial = pins.agents["web"].trial
    assert trial is not None and trial.model == P and trial.id.startswith(P)
    assert pins.agents["ops"].trial is None
    # No more probes of P while its trial is open.
    assert P not in probe_targets(state, AFTER + 120, POLICY)


def test_the_trial_turn_s_success_brings_every_agent_home() -> None:
    state, _ = apply(pinned_away(), probe(P, True, ts=AFTER), AFTER)
    canary = state.models[P].trial_agent
    assert canary == "ops"
    state, _, alerts = feed(state, outcome("ops", [(P, True, None)]), at=AFTER + 20)
    assert not state.models[P].failing and state.models[P].trial_agent is None
    assert (state.agents["ops"].serving, state.agents["web"].serving) == (P, P)
    assert {a.type for a in alerts} >= {TransitionType.RECOVERY}
    # A proven recovery starts the cooldown history over.
    assert state.models[P].cooldown_level == 0 and state.models[P].last_throttle_at is None
    assert to_pinfile(state, AFTER + 20).agents["ops"].trial is None


def test_a_failed_trial_turn_moves_nothing_and_escalates_nothing() -> None:
    state, _ = apply(pinned_away(), probe(P, True, ts=AFTER), AFTER)
    level = state.models[P].cooldown_level
    state, sentences, alerts = feed(
        state,
        decision(P, "rate_limit", "429 rate_limit_exceeded"),  # the line names the primary
        outcome("ops", [(P, False, 429), (FB, True, None)]),
        at=AFTER + 20,
    )
    health = state.models[P]
    assert health.failing and health.trial_agent is None and health.trial_failures == 1
    assert health.cooldown_level == level
    assert health.trial_not_before is not None
    assert health.trial_not_before >= AFTER + 20 + POLICY.trial_interval_s
    assert (state.agents["ops"].serving, state.agents["web"].serving) == (FB, FB2)
    assert not [a for a in alerts if a.type is not TransitionType.PAID_PROVIDER_SUCCESS]
    assert "no escalation" in sentences[-1]
    # The next trial waits for trial_interval_s, then a fresh probe success.
    assert P not in probe_targets(state, AFTER + 30, POLICY)
    assert P in probe_targets(state, AFTER + 25 + POLICY.trial_interval_s, POLICY)


def test_a_failed_trial_honours_a_longer_retry_after() -> None:
    state, _ = apply(pinned_away(), probe(P, True, ts=AFTER), AFTER)
    state, _, _ = feed(
        state,
        outcome("ops", [(P, False, 429), (FB, True, None)],
                error="429 rate_limit_exceeded (Retry-After: 900)"),
        at=AFTER + 20,
    )
    health = state.models[P]
    assert health.trial_not_before is not None and health.trial_not_before >= AFTER + 900
    assert health.cooldown_until is not None and health.cooldown_until >= AFTER + 900


def test_a_trial_whose_canary_sends_no_turn_ends_unanswered() -> None:
    state, _ = apply(pinned_away(), probe(P, True, ts=AFTER), AFTER)
    late = AFTER + POLICY.trial_timeout_s
    state, done = apply(state, Tick(), late)
    assert state.models[P].trial_agent is None and state.models[P].failing
    assert "ended unanswered" in done.sentence
    assert to_pinfile(state, late).agents["ops"].trial is None


def test_without_the_plugin_the_probe_rule_still_applies() -> None:
    state, _ = apply(pinned_away(steering=False), probe(P, True, ts=AFTER), AFTER)
    assert state.models[P].trial_agent is None and state.models[P].probe_streak == 1
    state, _ = apply(state, probe(P, True, ts=AFTER + 60), AFTER + 60)
    assert not state.models[P].failing
    assert state.agents["ops"].serving == P


def test_a_held_agent_is_never_the_canary() -> None:
    state = pinned_away()
    state, _ = apply(state, Hold("ops", FB, actor="alice"), T0 + 10)
    state, _ = apply(state, probe(P, True, ts=AFTER), AFTER)
    assert state.models[P].trial_agent == "web"


def test_a_throttled_probe_keeps_the_model_down_without_escalating() -> None:
    state = pinned_away()
    level, until = state.models[P].cooldown_level, state.models[P].cooldown_until
    throttled = ProbeResult(model=P, ok=False, started_at=AFTER, latency_s=0.1,
                            probe_id="p1", failure_class=FailureClass.THROTTLE, status=429)
    state, _ = apply(state, throttled, AFTER)
    assert state.models[P].failing
    assert (state.models[P].cooldown_level, state.models[P].cooldown_until) == (level, until)
    escalating = Policy(probe_escalates=True)
    done = decide(pinned_away(), throttled, AFTER, escalating)
    assert done.state.models[P].cooldown_level == level + 1


def test_a_flap_freeze_is_released_by_a_real_turn_s_success() -> None:
    state = pinned_away()
    state = State(
        chains=state.chains,
        agents={**state.agents, "ops": _frozen(state, "ops")},
        models=state.models,
        agents_by_model=state.agents_by_model,
        plugin=state.plugin,
    )
    state, _ = apply(state, probe(P, True, ts=AFTER), AFTER)
    assert state.models[P].trial_agent is not None  # a frozen agent's primary is tried
    canary = state.models[P].trial_agent
    state, _, alerts = feed(state, outcome(canary, [(P, True, None)]), at=AFTER + 20)
    assert not state.agents["ops"].flapping and state.agents["ops"].serving == P
    assert TransitionType.FLAPPING_STOP in {a.type for a in alerts}


def _frozen(state: State, agent_id: str) -> Any:
    from dataclasses import replace

    return replace(state.agents[agent_id], flapping=True, flap_score=80.0)


def test_trial_fields_survive_a_snapshot_and_an_older_snapshot_still_loads() -> None:
    state, _ = apply(pinned_away(), probe(P, True, ts=AFTER), AFTER)
    data = to_json(state)
    assert from_json(data) == state
    for record in data["models"].values():
        for name in ("trial_agent", "trial_at", "trial_until", "trial_failures",
                     "trial_not_before"):
            del record[name]
    older = from_json(data)
    assert older.models[P].trial_agent is None and older.models[P].failing
