"""The gateway plugin's lines as evidence: what really served a run wins over the
decision line that names the configured primary, and one agent's parked credential
moves no one. Lines go through the production parser and classify stage."""

from __future__ import annotations

import json
from typing import Any

from watcher.classify.evidence import to_event
from watcher.core.decide import decide, initial_state
from watcher.core.effects import EnqueueAlert
from watcher.core.policy import Policy
from watcher.core.state import State, from_json, to_json
from watcher.core.transitions import TransitionType
from watcher.parse.lines import parse_line

T0 = 1_796_000_000.0
P, FB, FB2 = "stub/primary", "stub/backup", "other/backup"
CHAINS = {"ops": [P, FB, FB2], "web": [P, FB2], "lab": ["stub/lab", FB, FB2]}
STEERING = (
    '[plugins] [fallback-pin] state {"v":1,"steering":true,"kind":"fresh",'
    '"why":"pin file fresh","pin_file":"/var/lib/failover-watcher/fallback-state.json"}'
)


def outcome(agent: str, attempts: list[tuple[str, bool, int | None]], **kw: Any) -> str:
    """A run outcome line; the first attempt is the primary one, served from
    ``pinned`` when given."""
    pinned = kw.get("pinned")
    rows = [
        {
            "model": model,
            "primary": i == 0,
            "overridden": i == 0 and pinned is not None,
            "ok": ok,
            "status": status,
            "error": None if ok else kw.get("error", f"{status} upstream said no"),
            "tries": 1,
        }
        for i, (model, ok, status) in enumerate(attempts)
    ]
    last = attempts[-1]
    line = {
        "v": 1,
        "agent": agent,
        "run": kw.get("run", "run-1"),
        "session": f"agent:{agent}:main",
        "primary": CHAINS[agent][0],
        "pinned": pinned,
        "model": last[0],
        "outcome": "ok" if last[1] else "error",
        "status": None if last[1] else last[2],
        "error": None,
        "attempts": rows,
    }
    return f"[plugins] [fallback-pin] run outcome {json.dumps(line)}"


def decision(candidate: str, reason: str, detail: str, *, requested: str = P, nxt: str = FB) -> str:
    return (
        "[model-fallback/decision] model fallback decision: decision=candidate_failed "
        f"requested={requested} candidate={candidate} reason={reason} next={nxt} detail={detail}"
    )


def feed(state: State, *lines: str, at: float = T0) -> tuple[State, list[str], list[Any]]:
    sentences: list[str] = []
    alerts: list[Any] = []
    for i, line in enumerate(lines):
        event = to_event(parse_line(line, ts=at + i))
        assert event is not None, line
        done = decide(state, event, at + i, Policy())
        state = done.state
        sentences.append(done.sentence)
        alerts += [e.alert for e in done.effects if isinstance(e, EnqueueAlert)]
    return state, sentences, alerts


def test_while_the_plugin_steers_a_primary_attempt_line_is_not_blamed_on_the_primary() -> None:
    state, sentences, _ = feed(
        initial_state(CHAINS),
        STEERING,
        decision(P, "model_not_found", '404 {"error": "model not found"}'),
    )
    assert state.plugin.steering
    assert not state.models[P].failing
    assert "not counted from this line" in sentences[-1]


def test_a_failed_pinned_attempt_is_blamed_on_the_pinned_model_not_the_primary() -> None:
    state = initial_state(CHAINS)
    state, _, _ = feed(state, decision(P, "rate_limit", "429 rate_limit_exceeded"))
    assert state.agents["ops"].serving == FB  # pinned away; the plugin now serves ops from FB
    state, sentences, alerts = feed(
        state,
        STEERING,
        decision(P, "model_not_found", "404 model 'backup' not found"),  # the journal's lie
        outcome("ops", [(FB, False, 404), (FB2, True, None)], pinned=FB),
        at=T0 + 10,
    )
    assert state.models[FB].failing and str(state.models[FB].failure_class) == "model_not_found"
    assert state.models[P].failure_class is not None
    assert str(state.models[P].failure_class) == "throttle"  # untouched by the lie
    assert state.agents["ops"].serving == FB2
    assert state.models[FB2].last_traffic_ok is True  # FB2 served the run
    assert any(a.type is TransitionType.FALLBACK_FIRED and a.from_model == FB for a in alerts)
    assert sentences[-1].startswith("run outcome: ")


def test_a_pinned_turn_counts_as_real_traffic_success_of_the_model_that_served() -> None:
    state, _, _ = feed(
        initial_state(CHAINS), STEERING, outcome("ops", [(FB, True, None)], pinned=FB)
    )
    assert state.models[FB].last_traffic_ok is True
    assert state.agents["ops"].last_lane == "agent:ops:main"  # attributed by name


def test_a_primary_success_reported_by_the_plugin_brings_the_primary_back() -> None:
    state, _, _ = feed(initial_state(CHAINS), decision(P, "server_error", "500 boom"))
    assert state.agents["web"].serving == FB2
    # Another agent still on the primary (say, held there) gets served by it for real.
    state, sentences, alerts = feed(state, STEERING, outcome("ops", [(P, True, None)]), at=T0 + 60)
    assert not state.models[P].failing
    assert state.agents["web"].serving == P
    assert any(a.type is TransitionType.RECOVERY for a in alerts), sentences


def test_an_inline_key_refusal_on_one_agent_moves_no_other_agent() -> None:
    refusal = (
        "Couldn't sign in to stub. Your saved login looks expired or no longer works. "
        '(Inline API key for provider "stub" is temporarily disabled after a provider '
        "auth/billing failure. Retry after about 1 minute, or switch to a different auth "
        "profile/API key.)"
    )
    state = initial_state(CHAINS)
    state, sentences, alerts = feed(
        state,
        STEERING,
        # ops's own primary 401'd; its next candidate on the same provider is refused
        # locally for ops only: FB is healthy for lab, which shares it.
        outcome("ops", [(P, False, 401), (FB, False, None), (FB2, True, None)]),
        decision(FB, "auth", refusal, nxt=FB2),
    )
    assert state.models[P].failing  # the real 401: provider evidence
    assert not state.models[FB].failing
    assert state.agents["lab"].serving == "stub/lab"
    assert "not evidence about the provider" in sentences[-1]
    assert {a.type for a in alerts} <= {TransitionType.FALLBACK_FIRED}


def test_an_inline_key_refusal_on_a_primary_attempt_is_that_agents_credential() -> None:
    state, sentences, alerts = feed(
        initial_state(CHAINS),
        STEERING,
        outcome(
            "lab",
            [("stub/lab", False, None), (FB2, True, None)],
            error='Inline API key for provider "stub" is temporarily disabled after a provider '
            "auth/billing failure.",
        ),
    )
    assert not state.models["stub/lab"].failing
    assert alerts == []
    assert "inside the gateway itself" in sentences[-1]


def test_without_the_plugin_a_primary_attempt_line_still_counts() -> None:
    state, _, _ = feed(initial_state(CHAINS), decision(P, "rate_limit", "429 slow down"))
    assert state.models[P].failing


def test_the_plugin_standing_down_restores_decision_lines_as_evidence() -> None:
    stale = STEERING.replace('"steering":true,"kind":"fresh"', '"steering":false,"kind":"stale"')
    state, _, _ = feed(initial_state(CHAINS), STEERING, stale, decision(P, "rate_limit", "429 x"))
    assert not state.plugin.steering and state.plugin.kind == "stale"
    assert state.models[P].failing


def test_the_plugins_word_survives_a_restart() -> None:
    state, _, _ = feed(initial_state(CHAINS), STEERING)
    again = from_json(json.loads(json.dumps(to_json(state))))
    assert again.plugin == state.plugin and again.plugin.steering
