"""The incidents the product exists for, replayed through the pure core.

Each test drives ``decide`` with a clocked ``Sim`` (ticks every 15 s, probes answered
by an oracle) and asserts on the sequence of transitions and sentences.
"""

from __future__ import annotations

from watcher.classify.table import TAXONOMY, FailureClass
from watcher.core.decide import decide, initial_state
from watcher.core.events import Event, Tick
from watcher.core.policy import Policy
from watcher.parse.records import Decision

from .sim import T0, Sim, alerts_of, failed, moves, other, probe, succeeded

CLOUD = "ollama/kimi-k2.5:cloud"
PAID = "deepseek/deepseek-v4-flash"
LOCAL = "ollama/qwen3:8b"
MIN = 60.0


# --- 14 May: the stale pin ------------------------------------------------------------

MAY14 = 1_778_774_640.0  # 2026-05-14T16:04:00Z


def test_401_wave_moves_orchestrator_to_paid_fallback_and_probes_bring_it_back() -> None:
    policy = Policy(paid_providers=frozenset({"deepseek"}))
    recovered_at = MAY14 + 20 * MIN  # the 401 wave ends here

    def oracle(model: str, now: float):  # type: ignore[no-untyped-def]
        if now < recovered_at:
            return probe(model, False, ts=now, failure_class=FailureClass.AUTH)
        return probe(model, True, ts=now)

    sim = Sim({"orchestrator": [CLOUD, PAID, LOCAL]}, policy, oracle=oracle)
    sim.now = MAY14
    first = sim.apply(
        failed(CLOUD, FailureClass.AUTH, ts=MAY14, next=PAID, reason="auth", duplicates=3)
    )
    assert moves(alerts_of(first)) == [("FALLBACK_FIRED", ("orchestrator",), CLOUD, PAID)]
    assert first.sentence.startswith(f"{CLOUD} failed in real traffic x4 (auth, auth)")
    served = sim.apply(succeeded(PAID, ts=MAY14 + 1, requested=CLOUD))
    assert [a.type.value for a in alerts_of(served)] == ["PAID_PROVIDER_SUCCESS"]

    sim.run_until(MAY14 + 3 * 3600)

    assert sim.types() == ["FALLBACK_FIRED", "PAID_PROVIDER_SUCCESS", "RECOVERY"]
    recovery = sim.alerts[-1]
    assert recovery.agents == ("orchestrator",)
    assert (recovery.from_model, recovery.to_model) == (PAID, CLOUD)
    assert recovered_at <= recovery.ts <= recovered_at + 2 * policy.probe_interval_s
    assert sim.serving("orchestrator") == CLOUD
    assert any("waiting for 2 in a row" in s for s in sim.sentences())


def test_auth_probe_failures_keep_the_pin_and_reset_the_streak() -> None:
    policy = Policy()
    state = initial_state({"a": [CLOUD, LOCAL]}, policy)
    state = decide(state, failed(CLOUD, FailureClass.AUTH, ts=T0, next=LOCAL), T0, policy).state
    state = decide(state, probe(CLOUD, True, ts=T0 + 60), T0 + 61, policy).state
    assert state.models[CLOUD].probe_streak == 1
    bad = decide(
        state, probe(CLOUD, False, ts=T0 + 120, failure_class=FailureClass.AUTH), T0 + 121, policy
    )
    assert bad.sentence == f"probe of {CLOUD} failed (auth); still down."
    assert bad.state.models[CLOUD].probe_streak == 0
    assert bad.state.agents["a"].serving == LOCAL


# --- 20 May: the flap -----------------------------------------------------------------

WINDOW_END = T0 + 40 * MIN  # the cloud provider throttles real traffic until here


def _may20_traffic(sim: Sim, now: float, retry_every: int = 120) -> list[Event]:
    """A request every 30 s. On the primary inside the window: 429, then the local
    fallback serves. Pinned away: the gateway retries its cooled-down primary every
    ``retry_every`` seconds (probe_cooldown_candidate), which fails inside the window."""
    events: list[Event] = []
    throttled = now < WINDOW_END
    if sim.serving("research") == CLOUD:
        if throttled and int(now) % 30 == 0:
            events.append(
                failed(
                    CLOUD,
                    FailureClass.THROTTLE,
                    ts=now,
                    next=LOCAL,
                    reason="rate_limit",
                    detail='429 {"error":"rate_limit_exceeded"}',
                )
            )
            events.append(succeeded(LOCAL, ts=now, requested=CLOUD))
    elif int(now - T0) % retry_every == 0:
        events.append(other(Decision.PROBE_COOLDOWN_CANDIDATE, CLOUD, ts=now, reason="rate_limit"))
        if throttled:
            events.append(
                failed(CLOUD, FailureClass.THROTTLE, ts=now, next=LOCAL, reason="rate_limit")
            )
        else:
            events.append(succeeded(CLOUD, ts=now))
    return events


def _may20(policy: Policy, retry_every: int = 120) -> Sim:
    sim = Sim(
        {"research": [CLOUD, LOCAL]},
        policy,
        oracle=lambda model, now: probe(model, True, ts=now),  # the local socket says 200
        traffic=lambda sim, now: _may20_traffic(sim, now, retry_every),
    )
    sim.now = T0 - 15
    sim.run_until(T0 + 2 * 3600)
    return sim


def test_throttled_primary_is_not_flipped_back_while_real_traffic_still_gets_429() -> None:
    sim = _may20(Policy())
    in_window = [a for a in sim.alerts if a.ts < WINDOW_END]
    assert [a.type.value for a in in_window] == ["THROTTLE_COOLDOWN", "FALLBACK_FIRED"]
    assert in_window[1].failure_class == "throttle"
    # Exactly one fallback all afternoon, and one recovery after the throttle ended.
    assert sim.count("FALLBACK_FIRED") == 1
    assert sim.count("RECOVERY") == 1
    recovery = next(a for a in sim.alerts if a.type.value == "RECOVERY")
    assert WINDOW_END <= recovery.ts <= WINDOW_END + 300 + 2 * 60 + 30
    assert sim.serving("research") == CLOUD
    assert "FLAPPING_START" not in sim.types()
    # Probes were never requested while the cooldown ran.
    probed = [s.now for s in sim.steps if type(s.event).__name__ == "ProbeResult"]
    assert all(t >= WINDOW_END for t in probed)


def test_naive_policy_flip_flops_on_the_same_input() -> None:
    sim = _may20(Policy.naive())
    in_window = [a.type.value for a in sim.alerts if a.ts < WINDOW_END]
    assert in_window.count("FALLBACK_FIRED") >= 5
    assert in_window.count("RECOVERY") >= 5
    assert "THROTTLE_COOLDOWN" not in in_window
    assert "FLAPPING_START" not in in_window


def test_traffic_rule_alone_stops_the_flap_when_the_gateway_keeps_retrying() -> None:
    """No cooldown: real-traffic failures every 2 minutes keep resetting the streak."""
    sim = _may20(Policy(cooldown=False))
    assert [a.type.value for a in sim.alerts if a.ts < WINDOW_END] == ["FALLBACK_FIRED"]
    assert any("probe streak reset by real traffic" in s for s in sim.sentences())


def test_flap_detection_freezes_the_agent_on_its_fallback() -> None:
    """No cooldown, and the gateway retries its primary only every 10 minutes, so two
    good probes fit in between: the flap starts, is caught after a few flips, and the
    agent stays on its fallback until evidence releases it: the gateway's first real
    request to the primary that succeeds once the throttle is over."""
    sim = _may20(Policy(cooldown=False), retry_every=600)
    types = sim.types()
    assert types.count("FLAPPING_START") == 1
    start = next(a for a in sim.alerts if a.type.value == "FLAPPING_START")
    assert start.flap_score is not None and start.flap_score >= 50
    after_start = [a for a in sim.alerts if a.ts >= start.ts and a.type.value == "RECOVERY"]
    assert all(a.ts >= WINDOW_END for a in after_start)
    stop = next(a for a in sim.alerts if a.type.value == "FLAPPING_STOP")
    assert stop.ts >= WINDOW_END
    assert types.count("FALLBACK_FIRED") <= 3
    assert sim.serving("research") == CLOUD


# --- mid-April: the primary dies mid-task, and the first fallback too -------------------

A, B, C = "openai/gpt-5.5", "anthropic/claude-4", "ollama/qwen3:8b"


def test_two_deep_chain_walks_down_then_back_up_one_step_at_a_time() -> None:
    policy = Policy()
    sim = Sim({"coder": [A, B, C]}, policy)
    sim.apply(failed(A, FailureClass.SERVER_ERROR, ts=T0, next=B, reason="server_error"))
    second = sim.apply(
        failed(B, FailureClass.TIMEOUT, ts=T0 + 5, next=C, reason="timeout", requested=A)
    )
    sim.apply(succeeded(C, ts=T0 + 6, requested=A))
    assert moves(alerts_of(second)) == [("FALLBACK_FIRED", ("coder",), B, C)]
    assert sim.serving("coder") == C

    # B comes back first: a partial failback, then A.
    for t, model in [(60, B), (120, B), (180, A), (240, A)]:
        sim.apply(probe(model, True, ts=T0 + t), T0 + t)
    assert moves(sim.alerts) == [
        ("FALLBACK_FIRED", ("coder",), A, B),
        ("FALLBACK_FIRED", ("coder",), B, C),
        ("RECOVERY", ("coder",), C, B),
        ("RECOVERY", ("coder",), B, A),
    ]
    assert sim.alerts[2].extra == {"partial": "true"}
    assert sim.state.agents["coder"].fallback_since is None


def test_exhausted_chain_raises_one_hard_failure_and_the_pin_stays() -> None:
    policy = Policy()
    sim = Sim({"coder": [A, B, C]}, policy)
    sim.apply(failed(A, FailureClass.SERVER_ERROR, ts=T0, next=B))
    sim.apply(failed(B, FailureClass.SERVER_ERROR, ts=T0 + 1, next=C))
    last = sim.apply(failed(C, FailureClass.CONNECTION, ts=T0 + 2, next=None))
    assert [a.type.value for a in alerts_of(last)] == ["HARD_FAILURE"]
    assert alerts_of(last)[0].extra == {"why": "chain exhausted"}
    assert sim.serving("coder") == C
    again = sim.apply(failed(C, FailureClass.CONNECTION, ts=T0 + 3, next=None))
    assert alerts_of(again) == []  # one card per exhaustion, not per line
    # All three are probed; the first back (B) takes the pin.
    tick = sim.apply(Tick(), T0 + 15)
    assert "probing " + ", ".join(sorted([A, B, C])) in tick.sentence
    sim.apply(probe(B, True, ts=T0 + 20), T0 + 20)
    sim.apply(probe(B, True, ts=T0 + 80), T0 + 80)
    assert sim.serving("coder") == B
    assert sim.state.agents["coder"].exhausted is False


def test_next_none_on_the_last_entry_is_a_hard_failure_even_with_skips_before_it() -> None:
    policy = Policy()
    sim = Sim({"ops": [A, B]}, policy)
    sim.apply(other(Decision.SKIP_CANDIDATE, A, ts=T0, reason="rate_limit"))
    d = sim.apply(
        failed(B, FailureClass.BILLING, ts=T0 + 1, next=None, reason="billing", requested=A)
    )
    assert [a.type.value for a in alerts_of(d)] == ["HARD_FAILURE"]
    assert sim.serving("ops") == A  # A was only skipped by the gateway: no evidence against it


# --- shared primaries -----------------------------------------------------------------


def test_shared_primary_failure_moves_every_agent_on_one_card() -> None:
    chains = {
        "orchestrator": [CLOUD, PAID],
        "research": [CLOUD, LOCAL],
        "coder": [CLOUD, LOCAL],
        "vision": ["google/gemini-3", LOCAL],
    }
    policy = Policy()
    sim = Sim(chains, policy)
    d = sim.apply(failed(CLOUD, FailureClass.SERVER_ERROR, ts=T0, next=LOCAL))
    cards = alerts_of(d)
    assert len(cards) == 1
    card = cards[0]
    assert card.type.value == "FALLBACK_FIRED"
    assert card.agents == ("coder", "orchestrator", "research")
    assert card.from_model == CLOUD and card.to_model is None
    assert card.extra["moves"] == (
        f"coder: {CLOUD} -> {LOCAL}; orchestrator: {CLOUD} -> {PAID}; research: {CLOUD} -> {LOCAL}"
    )
    assert sim.serving("vision") == "google/gemini-3"
    audit = [e for e in d.effects if type(e).__name__ == "AppendAudit"]
    assert audit[0].data["moves"]["orchestrator"] == {"before": CLOUD, "after": PAID}
    assert audit[0].data["evidence"] == f"cursor@{T0:.0f}"
    assert audit[0].data["policy_version"] == policy.version

    sim.apply(probe(CLOUD, True, ts=T0 + 60), T0 + 60)
    back = sim.apply(probe(CLOUD, True, ts=T0 + 120), T0 + 120)
    cards = alerts_of(back)
    assert [(c.type.value, c.agents, c.to_model) for c in cards] == [
        ("RECOVERY", ("coder", "orchestrator", "research"), CLOUD)
    ]
    assert back.sentence.startswith(f"probe 2/2 of {CLOUD} succeeded; {CLOUD} is up again")


# --- slot-full is a transient throttle -------------------------------------------------


def test_slot_full_on_a_local_model_is_a_transient_throttle_not_an_outage() -> None:
    assert TAXONOMY[FailureClass.THROTTLE].transient
    assert TAXONOMY[FailureClass.THROTTLE].starts_cooldown
    policy = Policy()
    sim = Sim({"vision": [LOCAL, CLOUD]}, policy, oracle=lambda m, now: probe(m, True, ts=now))
    d = sim.apply(
        failed(
            LOCAL,
            FailureClass.THROTTLE,
            ts=T0,
            next=CLOUD,
            reason="rate_limit",
            detail="server busy: all 4 slots are full, please retry",
            retry_after_s=30,
        )
    )
    assert [a.type.value for a in alerts_of(d)] == ["THROTTLE_COOLDOWN", "FALLBACK_FIRED"]
    cooldown = alerts_of(d)[0]
    assert cooldown.cooldown_until == T0 + 300  # Retry-After 30 s is shorter than the base
    sim.now = T0
    sim.run_until(T0 + 900)
    assert sim.types() == ["THROTTLE_COOLDOWN", "FALLBACK_FIRED", "RECOVERY"]
    assert T0 + 300 <= sim.alerts[-1].ts <= T0 + 300 + 2 * 60 + 15
    assert "HARD_FAILURE" not in sim.types()


def test_a_flip_back_that_meets_429_again_doubles_the_cooldown() -> None:
    """When the gateway retries its primary rarely, the probes are all the evidence
    there is: one flip back is allowed, the next 429 doubles the cooldown, and the
    pin never oscillates at the probe cadence."""
    sim = _may20(Policy(), retry_every=600)
    cooldowns = [a for a in sim.alerts if a.type.value == "THROTTLE_COOLDOWN"]
    assert [a.extra["level"] for a in cooldowns] == ["0", "1", "2"]
    durations = [a.cooldown_until - a.ts for a in cooldowns]  # type: ignore[operator]
    assert durations == [300.0, 600.0, 1200.0]
    assert sim.count("FALLBACK_FIRED") == 2
    assert sim.count("RECOVERY") == 2
    last = [a for a in sim.alerts if a.type.value == "RECOVERY"][-1]
    assert last.ts >= WINDOW_END


def test_a_failback_that_lands_in_the_throttle_freezes_the_pin_before_a_second_one() -> None:
    """The gateway never retries its primary: the watcher sees the throttle only when a
    failback lands in it. That bounce counts double, so the second failback attempt
    raises FLAPPING_START instead of flipping into the 429 again."""
    sim = _may20(Policy(), retry_every=10**9)
    in_window = [(a.type.value, a.extra.get("bounce")) for a in sim.alerts if a.ts < WINDOW_END]
    assert in_window == [
        ("THROTTLE_COOLDOWN", None),
        ("FALLBACK_FIRED", None),
        ("RECOVERY", None),
        ("THROTTLE_COOLDOWN", None),
        ("FALLBACK_FIRED", "true"),
        ("FLAPPING_START", None),
    ]
    freeze = next(s for s in sim.steps if "FLAPPING_START" in s.decided.sentence)
    assert freeze.decided.sentence.startswith("probe 2/2 of ollama/kimi-k2.5:cloud succeeded")
    assert sim.serving("research") == CLOUD  # home after the flap score decayed
    assert sim.count("FLAPPING_STOP") == 1
