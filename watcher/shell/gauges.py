"""The gauges that show the core's state after each applied batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.support.metrics import WatcherMetrics


class StateGauges:
    """Per agent: in fallback, and on a paid fallback; per model: the cooldown left.

    Called after every batch, so it touches only what changed: an agent whose record is
    the same object as last time (the state's persistent maps keep it) is skipped, and
    so is a model with no cooldown then or now. At 6,000 agents setting every gauge
    cost about 12 ms a batch."""

    def __init__(self, metrics: WatcherMetrics, policy: Policy) -> None:
        self.w = metrics
        self.policy = policy
        self._agents: Mapping[str, Any] = {}
        self._cooling: set[str] = set()  # models with a cooldown at the last update
        self._shown: set[str] = set()  # models whose gauge exists

    def update(self, state: State, now: float) -> None:
        w, seen = self.w, self._agents
        for agent_id, agent in state.agents.items():
            if seen.get(agent_id) is agent:
                continue
            w.in_fallback.labels(agent_id).set(1 if agent.in_fallback else 0)
            paid = agent.in_fallback and self.policy.is_paid(agent.serving)
            w.serving_paid.labels(agent_id).set(1 if paid else 0)
        self._agents = state.agents
        cooling: set[str] = set()
        for ref, health in state.models.items():
            left = (health.cooldown_until or 0.0) - now
            if left > 0:
                cooling.add(ref)
            elif ref in self._cooling or ref not in self._shown:
                left = 0.0
            else:
                continue
            w.cooldown_seconds.labels(ref).set(max(0.0, left))
            self._shown.add(ref)
        self._cooling = cooling
