"""The pin view's fast paths: records built unvalidated (``trusted``) and the JSON
pydantic-core writes are exactly what validation and the stdlib would give."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from watcher.classify.evidence import to_event
from watcher.core.decide import decide, initial_state
from watcher.core.events import Hold
from watcher.core.policy import Policy
from watcher.parse.lines import parse_line
from watcher.pins.check import check_text
from watcher.pins.schema import AgentPin, PinFile, dumps
from watcher.pins.view import PinView, to_pinfile

HEAD = "[model-fallback/decision] model fallback decision: decision="


def _states(seed: int, every: int = 600) -> Iterator[tuple[Any, float]]:
    """A busy fleet's states, every ``every`` events: holds, trials, cooldowns ending."""
    rng = random.Random(seed)
    pool = [f"prov{k % 3}/m-{k}" for k in range(12)]
    chains = {f"agent-{i:02d}": rng.sample(pool, 3) for i in range(30)}
    state, now, policy = initial_state(chains), 1_795_000_000.0, Policy(flap_full_scale=4)
    for i in range(600):
        chain = chains[rng.choice(list(chains))]
        model = rng.choice(chain)
        verdict = rng.choice(["failed", "failed", "succeeded"])
        line = (f"{HEAD}candidate_{verdict} requested={chain[0]} candidate={model} "
                f"reason={'rate_limit' if verdict == 'failed' else 'unknown'} next=none"
                + (" detail=429 slow down" if verdict == "failed" else ""))
        event = to_event(parse_line(line, ts=now), position=f"i={i}")
        if event is not None:
            state = decide(state, event, now, policy, jitter=0.0).state
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
