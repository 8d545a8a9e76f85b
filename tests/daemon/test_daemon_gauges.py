"""The state gauges touch only what changed, and still always show the truth."""

from __future__ import annotations

from dataclasses import replace

from watcher.core.decide import initial_state
from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.shell.gauges import StateGauges
from watcher.support.metrics import Metrics

PRIMARY, PAID = "ollama/a", "deepseek/b"


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"failover_watcher_{name}", labels)


def test_gauges_follow_moves_and_cooldowns_ending() -> None:
    metrics = Metrics()
    gauges = StateGauges(metrics.watcher, Policy(paid_providers=frozenset({"deepseek"})))
    state = initial_state({"nexus": [PRIMARY, PAID], "hermes": [PRIMARY, "ollama/c"]})
    gauges.update(state, 100.0)
    assert _value(metrics, "in_fallback", agent="nexus") == 0
    assert _value(metrics, "cooldown_seconds", model=PRIMARY) == 0  # the series exists

    nexus = replace(state.agents["nexus"], serving=PAID, fallback_since=100.0)
    cooling = replace(state.models[PRIMARY], cooldown_until=160.0, failing=True)
    moved = State(chains=state.chains, agents=state.agents.set("nexus", nexus),  # type: ignore[attr-defined]
                  models=state.models.set(PRIMARY, cooling),  # type: ignore[attr-defined]
                  agents_by_model=state.agents_by_model)
    gauges.update(moved, 100.0)
    assert _value(metrics, "in_fallback", agent="nexus") == 1
    assert _value(metrics, "serving_paid", agent="nexus") == 1
    assert _value(metrics, "in_fallback", agent="hermes") == 0
    assert _value(metrics, "cooldown_seconds", model=PRIMARY) == 60
    gauges.update(moved, 130.0)  # the same state, later: the cooldown counts down
    assert _value(metrics, "cooldown_seconds", model=PRIMARY) == 30
    gauges.update(moved, 200.0)  # and ends
    assert _value(metrics, "cooldown_seconds", model=PRIMARY) == 0

    gauges.update(state, 200.0)  # back on the primary
    assert _value(metrics, "in_fallback", agent="nexus") == 0
    assert _value(metrics, "serving_paid", agent="nexus") == 0
