"""The core under a clock that jumps back and forth: whatever
order ``now`` arrives in, no evidence ever moves a model's ``cooldown_until`` earlier,
and nothing raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.classify.evidence import to_event
from watcher.classify.table import FailureClass
from watcher.core.decide import decide, initial_state
from watcher.core.events import Event, Tick
from watcher.core.evidence import ProbeResult
from watcher.core.policy import Policy
from watcher.parse.lines import parse_line

PRIMARY = "ollama/glm-5.1:cloud"
CHAINS = {
    "nexus": [PRIMARY, "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", PRIMARY],
}
T0 = 1_780_000_000.0


def _traffic(reason: str, ts: float) -> Event:
    line = (
        "[model-fallback/decision] model fallback decision: decision=candidate_failed "
        f"requested={PRIMARY} candidate={PRIMARY} reason={reason} "
        "next=deepseek/deepseek-v4-flash detail=429 rate_limit_exceeded"
    )
    event = to_event(parse_line(line, ts=ts), position="p")
    assert event is not None
    return event


def _event(kind: int, ts: float, n: int) -> Event:
    if kind == 0:
        return Tick()
    if kind == 1:
        return _traffic("rate_limit", ts)
    if kind == 2:
        return ProbeResult(PRIMARY, True, ts, 0.1, f"p{n}")
    if kind == 3:
        return ProbeResult(
            PRIMARY, False, ts, 0.1, f"p{n}", FailureClass.THROTTLE, 429, retry_after_s=30.0
        )
    return _traffic("timeout", ts)


steps = st.lists(
    st.tuples(
        st.integers(0, 4),  # the event kind
        st.floats(-6 * 3600, 6 * 3600, allow_nan=False),  # now, relative to T0: jumps
        st.floats(-600, 600, allow_nan=False),  # the event's own stamp, relative to now
        st.floats(-1, 1, allow_nan=False),  # jitter
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_a_jumping_now_never_moves_a_cooldown_earlier(
    seq: list[tuple[int, float, float, float]],
) -> None:
    policy = Policy(cooldown_base_s=60, cooldown_cap_s=600, probe_interval_s=5)
    state = initial_state(CHAINS)
    for n, (kind, now_rel, ts_rel, jitter) in enumerate(seq):
        now = T0 + now_rel
        before = {ref: h.cooldown_until for ref, h in state.models.items()}
        decided = decide(state, _event(kind, now + ts_rel, n), now, policy, jitter=jitter)
        state = decided.state
        for ref, until in before.items():
            after = state.models[ref].cooldown_until
            if until is not None:
                assert after is not None and after >= until, (ref, until, after)
        assert decided.sentence
