"""The pin view's fast paths: records built unvalidated (``trusted``) and the JSON
pydantic-core writes are exactly what validation and the stdlib would give."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from watcher.classify.evidence import to_event
from watcher.core.decide import decide, initial_state
from watcher.core.events import Hold, Tick
from watcher.core.policy import Policy
from watcher.parse.lines import parse_line
from watcher.pins.check import check_text
from watcher.pins.schema import AgentPin, PinFile, dumps
from watcher.pins.view import PinView, to_pinfile

HEAD = "[model-fallback/decision] model fallback decision: decision="


def _traffic(
    state: Any, chains: dict[str, list[str]], rng: random.Random, now: float, i: int,
    policy: Policy, reasons: tuple[str, ...],
) -> Any:
    """``state`` after one random agent's chain member fails (one of ``reasons``, twice
    in three) or serves, as a parsed journal line."""
    chain = chains[rng.choice(list(chains))]
    model = rng.choice(chain)
    verdict = rng.choice(["failed", "failed", "succeeded"])
    reason = rng.choice(reasons) if len(reasons) > 1 else reasons[0]
    line = (f"{HEAD}candidate_{verdict} requested={chain[0]} candidate={model} "
            f"reason={reason if verdict == 'failed' else 'unknown'} next=none"
            + (" detail=429 slow down" if verdict == "failed" else ""))
    event = to_event(parse_line(line, ts=now), position=f"i={i}")
    return state if event is None else decide(state, event, now, policy, jitter=0.0).state


def _states(seed: int, every: int = 600) -> Iterator[tuple[Any, float]]:
    """A busy fleet's states, every ``every`` events: holds, trials, cooldowns ending."""
    rng = random.Random(seed)
    pool = [f"prov{k % 3}/m-{k}" for k in range(12)]
    chains = {f"agent-{i:02d}": rng.sample(pool, 3) for i in range(30)}
    state, now, policy = initial_state(chains), 1_795_000_000.0, Policy(flap_full_scale=4)
    for i in range(600):
        state = _traffic(state, chains, rng, now, i, policy, ("rate_limit",))
        if i == 300:
            agent = sorted(chains)[0]
            hold = Hold(agent, chains[agent][1], until=now + 600, note="maintenance", actor="a")
            state = decide(state, hold, now, policy, jitter=0.0).state
        now += rng.choice([0.5, 1.0, 7.0, 40.0])
        if i % every == every - 1:
            yield state, now


def _busy_state(seed: int) -> tuple[Any, float]:
    return list(_states(seed))[-1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_trusted_view_is_what_validation_would_build(seed: int) -> None:
    state, now = _busy_state(seed)
    pins = to_pinfile(state, now)  # type: ignore[arg-type]
    text = dumps(pins)
    validated = PinFile.model_validate_json(text)
    assert validated == pins
    assert any(p.in_fallback for p in pins.agents.values())
    assert any(p.hold is not None for p in pins.agents.values())
    # byte for byte what the stdlib's indenting encoder wrote before
    data = pins.model_dump(mode="json")
    assert text == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert list(json.loads(text)["agents"]) == sorted(pins.agents)


def test_trusted_refuses_a_record_missing_a_field() -> None:
    with pytest.raises(TypeError, match="every field"):
        AgentPin.trusted(primary="a/b", current_serving="a/b", in_fallback=False)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_reused_view_writes_exactly_what_a_fresh_one_does_as_the_state_moves(
    seed: int,
) -> None:
    """The cache must never show a stale record: each state's text from the long-lived
    view equals a fresh view's, the pydantic dump of its file, and a valid file."""
    view = PinView()
    renders = 0
    for state, now in _states(seed, every=20):
        for later in (now, now + 400.0):  # the same state, once cooldowns have ended
            pins, text = view.render(state, later)
            fresh_pins, fresh_text = PinView().render(state, later)
            assert text == fresh_text
            assert pins == fresh_pins
            assert text.decode() == dumps(pins)
            assert check_text(text) == pins
            renders += 1
    assert renders == 60


def _forward_states(seed: int) -> Iterator[tuple[Any, float]]:
    """States after every event, the clock only moving on (so the view takes its
    incremental path every time): cooldowns and holds ending between two renders,
    trials opening and closing, agents starting and stopping to flap."""
    rng = random.Random(seed)
    pool = [f"prov{k % 3}/m-{k}" for k in range(10)]
    chains = {f"agent-{i:02d}": rng.sample(pool, 3) for i in range(24)}
    state, now = initial_state(chains), 1_795_000_000.0
    policy = Policy(flap_full_scale=4, cooldown_base_s=20.0)
    for i in range(900):
        roll = rng.random()
        if roll < 0.06:
            state = decide(state, Tick(), now, policy, jitter=0.0).state
        elif roll < 0.08:
            agent = rng.choice(sorted(chains))
            until = now + rng.choice([3.0, 30.0])
            hold = Hold(agent, rng.choice(chains[agent][1:]), until=until, note="n", actor="a")
            state = decide(state, hold, now, policy, jitter=0.0).state
            # and a trial for it, shown only once the hold has ended
            primary = chains[agent][0]
            health = replace(state.models[primary], trial_agent=agent, trial_at=now,
                             trial_until=now + 60.0)
            state = replace(state, models=state.models.set(primary, health))  # type: ignore[attr-defined]
        elif roll < 0.11:  # a trial opens on, or closes from, a primary
            ref = rng.choice(pool)
            health = state.models[ref]
            agents = [a for a in state.agents_by_model.get(ref, ()) if chains[a][0] == ref]
            if health.trial_agent is None and agents:
                health = replace(health, trial_agent=rng.choice(agents), trial_at=now,
                                 trial_until=now + 60.0)
            else:
                health = replace(health, trial_agent=None, trial_at=None, trial_until=None)
            state = replace(state, models=state.models.set(ref, health))  # type: ignore[attr-defined]
        else:
            state = _traffic(state, chains, rng, now, i, policy, ("rate_limit", "overloaded"))
        now += rng.choice([0.0, 0.5, 1.0, 3.0, 11.0])
        yield state, now


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_the_incremental_view_matches_a_fresh_one_at_every_step(seed: int) -> None:
    """The view re-makes only the records that may have changed (objects changed, or
    ``now`` past a cooldown or hold end): after every event, with the clock only moving
    on, its file equals a fresh view's, byte for byte."""
    view = PinView()
    seen = {"trial": 0, "hold": 0, "throttled": 0, "flapping": 0}
    for state, now in _forward_states(seed):
        pins, text = view.render(state, now)
        fresh_pins, fresh_text = PinView().render(state, now)
        assert text == fresh_text
        assert pins == fresh_pins
        seen["trial"] += any(p.trial is not None for p in pins.agents.values())
        seen["hold"] += any(p.hold is not None for p in pins.agents.values())
        seen["throttled"] += any(m.state == "throttled" for m in pins.models.values())
        seen["flapping"] += any(m.state == "flapping" for m in pins.models.values())
    assert text.decode() == dumps(pins)
    assert all(seen.values()), seen  # every kind of record the time can change was shown


def test_a_clock_gone_back_renders_in_full() -> None:
    view = PinView()
    states = list(_forward_states(8))
    state, now = states[-1]
    view.render(state, now)
    for earlier in (now - 500.0, now - 5_000.0):
        assert view.render(state, earlier)[1] == PinView().render(state, earlier)[1]
