"""The gauges that show the core's state after each applied batch."""

from __future__ import annotations

from watcher.core.policy import Policy
from watcher.core.state import State
from watcher.support.metrics import WatcherMetrics


def update_gauges(w: WatcherMetrics, state: State, policy: Policy, now: float) -> None:
    """Per agent: in fallback, and on a paid fallback; per model: the cooldown left."""
    for agent_id, agent in state.agents.items():
        w.in_fallback.labels(agent_id).set(1 if agent.in_fallback else 0)
        paid = agent.in_fallback and policy.is_paid(agent.serving)
        w.serving_paid.labels(agent_id).set(1 if paid else 0)
    for ref, health in state.models.items():
        until = health.cooldown_until or 0.0
        w.cooldown_seconds.labels(ref).set(max(0.0, until - now))
