"""The pure decision core: ``decide(state, event, now, policy) -> Decided``.

No clock, no files, no network, no randomness: everything arrives as an argument.
"""

from watcher.core.decide import Decided, decide, initial_state, probe_targets
from watcher.core.policy import Policy
from watcher.core.state import State, from_json, to_json

__all__ = [
    "Decided",
    "Policy",
    "State",
    "decide",
    "from_json",
    "initial_state",
    "probe_targets",
    "to_json",
]
