"""The hot-path shortcuts equal the slow paths they replace.

``decide`` runs once per traffic event, so a few helpers take shortcuts: the core's
``_fast.evolve`` instead of ``dataclasses.replace`` and ``_fast.routine_finish``
instead of card assembly when a step has no cards, and ``pins.schema.iso``'s
cached-day path instead of a datetime ``strftime``.
Each must give exactly what the slow path gives, for every input.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.classify.table import FailureClass
from watcher.core._fast import evolve
from watcher.core.policy import Policy
from watcher.core.state import HEALTHY, AgentState, ModelHealth, initial_state
from watcher.core.step import Step
from watcher.core.transitions import Alert, TransitionType
from watcher.pins.schema import iso as fast_iso
from watcher.pins.schema import iso_by_datetime as slow_iso

timestamps = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=3e11),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([0, 0.0, -0.5, 86_399.999, 253_402_300_799.9, 253_402_300_800, 1e20]),
)


def _outcome(fn: Any, ts: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(ts)
    except Exception as exc:  # the error itself is what is compared
        return "raised", type(exc)


@given(timestamps)
def test_core_iso_formats_every_timestamp_as_the_pin_file_does(ts: Any) -> None:
    assert _outcome(fast_iso, ts) == _outcome(slow_iso, ts)


opt_float = st.none() | st.floats(allow_nan=False, min_value=-1e10, max_value=1e10)
health_changes = st.fixed_dictionaries(
    {},
    optional={
        "failing": st.booleans(),
        "failure_class": st.none() | st.sampled_from(list(FailureClass)),
        "reason": st.none() | st.text(max_size=5),
        "since": opt_float,
        "cooldown_until": opt_float,
        "cooldown_level": st.integers(0, 9),
        "probe_streak": st.integers(0, 9),
        "last_traffic_ok": st.none() | st.booleans(),
        "fail_count": st.integers(0, 99),
        "last_event_at": opt_float,
    },
)
agent_changes = st.fixed_dictionaries(
    {},
    optional={
        "serving": st.sampled_from(["p/a", "p/b"]),
        "transitions": st.lists(st.floats(0, 1e6), max_size=4).map(tuple),
        "flapping": st.booleans(),
        "flap_score": st.floats(0, 100),
        "exhausted": st.booleans(),
        "last_lane": st.none() | st.text(max_size=5),
    },
)


@given(health_changes, health_changes)
def test_evolve_copies_model_health_exactly_as_dataclasses_replace(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    base = ModelHealth(**first)
    fast, slow = evolve(base, **second), dataclasses.replace(base, **second)
    assert fast == slow
    assert type(fast) is ModelHealth
    assert all(getattr(fast, f.name) is getattr(slow, f.name) for f in dataclasses.fields(slow))


@given(agent_changes)
def test_evolve_copies_an_agent_exactly_as_dataclasses_replace(changes: dict[str, Any]) -> None:
    base = AgentState(chain=("p/a", "p/b"), serving="p/a", transitions=(1.0,))
    assert evolve(base, **changes) == dataclasses.replace(base, **changes)


def test_evolve_copies_an_alert_and_leaves_the_original_alone() -> None:
    alert = Alert(type=TransitionType.RECOVERY, ts=1.0, agents=("a",), extra={"k": "v"})
    moved = evolve(alert, agents=("a", "b"), extra={"k": "w"})
    assert moved == dataclasses.replace(alert, agents=("a", "b"), extra={"k": "w"})
    assert alert.agents == ("a",) and alert.extra == {"k": "v"}


def test_evolve_refuses_a_field_the_dataclass_does_not_have() -> None:
    with pytest.raises(TypeError, match="ModelHealth has no field"):
        evolve(HEALTHY, failng=True)


_STATE = initial_state({"a": ["p/a", "p/b"], "b": ["p/b"]})
_POLICY = Policy()


def _step(notes: list[str], dirty: bool, touch_model: bool, touch_agent: bool) -> Step:
    step = Step(_STATE, 100.0, _POLICY)
    if touch_model:
        step.set_model("p/a", evolve(HEALTHY, fail_count=1), visible=dirty)
    if touch_agent:
        step.set_agent("a", evolve(_STATE.agents["a"], last_lane="x"))
    step.dirty = dirty
    step.notes.extend(notes)
    return step


@given(
    st.lists(st.text(max_size=8), max_size=3),
    st.text(max_size=12),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_a_routine_decision_finishes_exactly_as_the_full_path_would(
    notes: list[str], head: str, quiet: bool, dirty: bool, touch_model: bool, touch_agent: bool
) -> None:
    fast = _step(notes, dirty, touch_model, touch_agent).finish(head, quiet=quiet)
    full = _step(notes, dirty, touch_model, touch_agent).finish_in_full(head, quiet=quiet)
    assert fast == full
    assert (fast.state is _STATE) == (not touch_model and not touch_agent)
