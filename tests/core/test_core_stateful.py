"""Hypothesis stateful tests: random traffic, probes, operator commands and ticks with a
monotone clock, checking the promises the failback policy makes after every step."""

from __future__ import annotations

import json

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from watcher.classify.table import FailureClass
from watcher.core.decide import Decided, decide, initial_state
from watcher.core.events import Event, Hold, Release, SetServing, Tick
from watcher.core.policy import Policy
from watcher.core.state import State, check_invariants, from_json, to_json
from watcher.pins.view import to_pinfile

from .sim import T0, failed, probe, succeeded

P, Q, F1, F2 = "cloud/p", "cloud/q", "paid/f1", "local/f2"
MODELS = [P, Q, F1, F2]
CHAINS = {"a": [P, F1, F2], "b": [P, F2], "c": [Q, F1], "d": [F1, P]}
AGENTS = sorted(CHAINS)

models = st.sampled_from(MODELS)
agents = st.sampled_from(AGENTS)
classes = st.sampled_from(list(FailureClass))
jitters = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


def _index(state: State, agent: str) -> int:
    a = state.agents[agent]
    return a.chain.index(a.serving)


class CoreMachine(RuleBasedStateMachine):
    policy = Policy(flap_full_scale=4, flap_window_s=1800)  # flaps easily: exercise the freeze

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.state = initial_state(CHAINS, self.policy)

    # -- driving ---------------------------------------------------------------------
    def _apply(self, event: Event, *, operator: bool = False, jitter: float = 0.0) -> Decided:
        before = self.state
        done = decide(before, event, self.now, self.policy, jitter=jitter)
        self.state = done.state
        assert done.sentence.endswith(".")
        if not operator:
            self._check_automatic(before, done.state)
        return done

    def _check_automatic(self, before: State, after: State) -> None:
        now = self.now
        for agent_id in AGENTS:
            old_i, new_i = _index(before, agent_id), _index(after, agent_id)
            agent = after.agents[agent_id]
            if new_i < old_i:
                target = after.models[agent.serving]
                # No failback during cooldown (or onto a model still down).
                assert not target.in_cooldown(now), (agent_id, agent.serving)
                assert not target.failing
                # No failback while flapping, unless everything from the old pin on is down.
                if agent.flapping:
                    rest = agent.chain[old_i:]
                    assert all(after.models[m].failing for m in rest), (agent_id, rest)
        for ref in MODELS:
            old = before.models[ref].cooldown_until
            new = after.models[ref].cooldown_until
            if old is not None:
                assert new is not None and new >= old, f"cooldown of {ref} shrank"

    # -- rules -----------------------------------------------------------------------
    @rule(dt=st.floats(min_value=0, max_value=900, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def tick(self) -> None:
        self._apply(Tick())

    @rule(
        model=models,
        failure_class=classes,
        duplicates=st.integers(0, 3),
        exhausted=st.booleans(),
        retry_after=st.none() | st.floats(min_value=0, max_value=7200, allow_nan=False),
        lag=st.floats(min_value=0, max_value=120, allow_nan=False),
        jitter=jitters,
    )
    def traffic_fails(
        self,
        model: str,
        failure_class: FailureClass,
        duplicates: int,
        exhausted: bool,
        retry_after: float | None,
        lag: float,
        jitter: float,
    ) -> None:
        event = failed(
            model,
            failure_class,
            ts=self.now - lag,
            next=None if exhausted else "x/y",
            duplicates=duplicates,
            retry_after_s=retry_after,
        )
        self._apply(event, jitter=jitter)

    @rule(model=models)
    def traffic_serves(self, model: str) -> None:
        self._apply(succeeded(model, ts=self.now))

    @rule(model=models, ok=st.booleans(), failure_class=classes, jitter=jitters)
    def probe_returns(
        self, model: str, ok: bool, failure_class: FailureClass, jitter: float
    ) -> None:
        self._apply(probe(model, ok, ts=self.now, failure_class=failure_class), jitter=jitter)

    @rule(
        agent=agents,
        data=st.data(),
        until=st.none() | st.floats(min_value=1, max_value=3600, allow_nan=False),
    )
    def operator_holds(self, agent: str, data: st.DataObject, until: float | None) -> None:
        model = data.draw(st.sampled_from(CHAINS[agent]))
        event = Hold(agent, model, actor="op", until=None if until is None else self.now + until)
        done = self._apply(event, operator=True)
        assert done.state.agents[agent].serving == model

    @rule(agent=agents)
    def operator_releases(self, agent: str) -> None:
        self._apply(Release(agent, actor="op"), operator=True)

    @rule(agent=agents, data=st.data())
    def operator_sets(self, agent: str, data: st.DataObject) -> None:
        model = data.draw(st.sampled_from(CHAINS[agent]))
        done = self._apply(SetServing(agent, model, actor="op"), operator=True)
        assert done.state.agents[agent].serving == model

    @precondition(lambda self: any(a.flapping for a in self.state.agents.values()))
    @rule()
    def long_quiet_period(self) -> None:
        self.now += 4000
        self._apply(Tick())
        assert not any(a.flapping for a in self.state.agents.values())

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def every_pin_names_a_member_of_its_agents_chain(self) -> None:
        for agent_id, agent in self.state.agents.items():
            assert agent.serving in CHAINS[agent_id]
        to_pinfile(self.state, self.now)  # the pin file model re-validates everything

    @invariant()
    def a_model_in_cooldown_is_down(self) -> None:
        for health in self.state.models.values():
            if health.in_cooldown(self.now):
                assert health.failing

    @invariant()
    def check_invariants_finds_nothing_wrong(self) -> None:
        assert check_invariants(self.state, self.now) == []

    @invariant()
    def state_survives_a_json_round_trip(self) -> None:
        assert from_json(json.loads(json.dumps(to_json(self.state)))) == self.state


TestCoreInvariants = CoreMachine.TestCase


def test_check_invariants_names_what_is_broken() -> None:
    from dataclasses import replace

    from watcher.core.decide import initial_state

    state = initial_state(CHAINS)
    agent_id = sorted(CHAINS)[0]
    broken = replace(state, agents={**state.agents, agent_id: replace(
        state.agents[agent_id], serving="nowhere/model", fallback_since=1.0)})
    problems = check_invariants(broken, 0.0)
    assert any("outside its chain" in p for p in problems), problems
    assert check_invariants(state, 0.0) == []
