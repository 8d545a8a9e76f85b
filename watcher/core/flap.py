"""Flap scoring: a weighted percent-state-change over an agent's recent pin changes.

Nagios/Icinga keep the last 21 check states and weigh each state change from 0.8
(oldest) to 1.2 (newest). Pin changes are events, not samples, so this keeps their
timestamps instead: a change ``age`` seconds old inside ``flap_window_s`` weighs
``1.2 - 0.4 * age / window``, older ones drop out, and ``flap_full_scale`` changes
make 100 %. The score falls as time passes, which is why FLAPPING_STOP needs Ticks.
"""

from __future__ import annotations

from watcher.core.policy import Policy

MAX_KEPT = 64  # bound on kept timestamps; beyond full scale they cannot raise the score


def prune(transitions: tuple[float, ...], now: float, policy: Policy) -> tuple[float, ...]:
    horizon = now - policy.flap_window_s
    if transitions and transitions[0] <= horizon:
        transitions = tuple(t for t in transitions if t > horizon)
    if len(transitions) > MAX_KEPT:
        transitions = transitions[-MAX_KEPT:]
    return transitions


def score(transitions: tuple[float, ...], now: float, policy: Policy) -> float:
    """Percent (0..100) of state change in the window ending at ``now``."""
    window = policy.flap_window_s
    total = 0.0
    for ts in transitions:
        age = now - ts
        if age < 0:
            age = 0.0
        if age >= window:
            continue
        total += 1.2 - 0.4 * age / window
    return min(100.0, 100.0 * total / policy.flap_full_scale)
