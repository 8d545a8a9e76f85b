"""The simulated gateway prints what the log contract says a gateway prints.

Every line is read back with the production parser and taxonomy: if the simulator
drifted from the contract, these tests (and the parser's Unparsed) would say so.
Most tests here drive the stock gateway (``plugin = false``); the last ones drive it
with the fallback-pin plugin, as the bundled scenarios do.
"""

from __future__ import annotations

from watcher.classify.table import FailureClass
from watcher.classify.taxonomy import classify
from watcher.parse.lines import parse_line
from watcher.parse.records import ChainStopped, Decision, FallbackDecision, LaneHint, RunOutcome
from watcher.simulate import parse_scenario
from watcher.simulate.gateway import GatewayModel, PinnedTrial, RequestOutcome
from watcher.simulate.model import Scenario

T0 = 1779283800.0  # 2026-05-20T13:30:00Z
GLM, MINIMAX, DEEPSEEK = (
    "ollama/glm-5.1:cloud",
    "ollama/minimax-m2.7:cloud",
    "deepseek/deepseek-v4-flash",
)


def scenario(timeline: str, gateway: str = "", *, plugin: bool = False) -> Scenario:
    gateway = f"plugin = {'true' if plugin else 'false'}\n{gateway}"
    return parse_scenario(f"""
start = "2026-05-20T13:30:00Z"
duration = "2h"
[agents]
nexus = ["{GLM}", "{MINIMAX}", "{DEEPSEEK}"]
[timeline]
{timeline}
[gateway]
{gateway}
""")


def records(outcome: RequestOutcome) -> list[object]:
    parsed = [parse_line(line.text) for line in outcome.lines]
    assert all(r is not None for r in parsed), "a printed line was taken for chatter"
    return parsed


def test_a_first_try_success_prints_nothing() -> None:
    gw = GatewayModel(scenario(""))
    out = gw.handle("nexus", GLM, T0 + 60)
    assert out.served_by == GLM and out.lines == () and out.tried == (GLM,)


def test_a_rate_limit_is_retried_before_the_decision_line_and_the_fallback_serves() -> None:
    sc = scenario(f'"{GLM}" = ["from 13:30 to 14:00 traffic=429"]',
                  "rate_limit_retries = 3\nretry_backoff = 2")
    out = GatewayModel(sc).handle("nexus", GLM, T0 + 60)
    lane, failed, succeeded = records(out)
    assert isinstance(lane, LaneHint) and lane.agent_id == "nexus"
    assert lane.lane == "session:agent:nexus:main"
    assert isinstance(failed, FallbackDecision)
    assert failed.decision is Decision.CANDIDATE_FAILED
    assert (str(failed.candidate), str(failed.next), failed.reason) == (GLM, MINIMAX, "rate_limit")
    # The decision line comes after the retries: 2 + 4 + 8 s of backoff at least.
    assert failed.ts is not None and failed.ts - (T0 + 60) >= 14
    assert classify(failed).failure_class is FailureClass.THROTTLE
    assert isinstance(succeeded, FallbackDecision)
    assert succeeded.decision is Decision.CANDIDATE_SUCCEEDED
    assert (str(succeeded.requested), str(succeeded.candidate)) == (GLM, MINIMAX)
    assert succeeded.reason == "unknown"
    assert out.served_by == MINIMAX


def test_a_retry_that_lands_after_the_window_succeeds_silently() -> None:
    sc = scenario(f'"{GLM}" = ["from 13:30 to 13:31:05 traffic=429"]',
                  "rate_limit_retries = 3\nretry_backoff = 2")
    out = GatewayModel(sc).handle("nexus", GLM, T0 + 60)
    assert out.served_by == GLM and out.lines == ()


def test_an_exhausted_chain_says_next_none_then_chain_stopped() -> None:
    sc = scenario(f'"ollama/*" = ["traffic=5xx"]\n"{DEEPSEEK}" = ["traffic=timeout"]')
    out = GatewayModel(sc).handle("nexus", GLM, T0 + 60)
    parsed = records(out)
    decisions = [r for r in parsed if isinstance(r, FallbackDecision)]
    assert [str(d.candidate) for d in decisions] == [GLM, MINIMAX, DEEPSEEK]
    assert decisions[-1].chain_exhausted
    assert classify(decisions[0]).failure_class is FailureClass.SERVER_ERROR
    assert classify(decisions[-1]).failure_class is FailureClass.TIMEOUT
    assert isinstance(parsed[-1], ChainStopped)
    assert sum(isinstance(r, LaneHint) for r in parsed) == 3  # one before each failure
    assert out.served_by is None
    # Lines are in time order, and a timeout costs the configured 30 s.
    stamps = [line.ts for line in out.lines]
    assert stamps == sorted(stamps) and out.finished - out.started >= 30


def test_the_walk_starts_where_the_pin_says() -> None:
    sc = scenario(f'"{MINIMAX}" = ["traffic=503"]')
    out = GatewayModel(sc).handle("nexus", MINIMAX, T0 + 60)
    decisions = [r for r in records(out) if isinstance(r, FallbackDecision)]
    assert all(str(d.requested) == MINIMAX for d in decisions)
    assert GLM not in out.tried and out.served_by == DEEPSEEK
    assert classify(decisions[0]).failure_class is FailureClass.OVERLOADED


def test_the_gateway_skips_a_model_in_its_own_cooldown_and_that_is_not_evidence() -> None:
    sc = scenario(f'"{GLM}" = ["traffic=429"]', "rate_limit_retries = 0\ncooldown = 60")
    gw = GatewayModel(sc)
    gw.handle("nexus", GLM, T0 + 60)
    out = gw.handle("nexus", GLM, T0 + 90)
    skip = records(out)[0]
    assert isinstance(skip, FallbackDecision) and skip.decision is Decision.SKIP_CANDIDATE
    assert classify(skip).failure_class is FailureClass.GATEWAY_LOCAL
    assert GLM not in out.tried
    later = gw.handle("nexus", GLM, T0 + 200)  # the gateway's cooldown is over
    assert GLM in later.tried


def failures(outcome: RequestOutcome) -> list[FallbackDecision]:
    return [
        r for r in records(outcome)
        if isinstance(r, FallbackDecision) and r.decision is Decision.CANDIDATE_FAILED
    ]


def test_repeated_auth_failures_are_folded_as_the_gateway_does() -> None:
    sc = scenario('"ollama/*" = ["traffic=401"]')
    gw = GatewayModel(sc)
    outs = [gw.handle("nexus", GLM, T0 + 60 + 10 * i) for i in range(4)]  # 0, 10, 20, 30 s
    first = failures(outs[0])
    assert [d.suppressed_duplicates for d in first] == [0, 0]
    assert classify(first[0]).failure_class is FailureClass.AUTH
    # Within 30 s identical lines are dropped; lane lines still print.
    assert failures(outs[1]) == [] and failures(outs[2]) == []
    assert any(isinstance(r, LaneHint) for r in records(outs[1]))
    # The next printed line carries the count: two more failures, not zero.
    folded = failures(outs[3])
    assert folded[0].suppressed_duplicates == 2 and folded[0].occurrences == 3


def test_a_slot_full_answer_is_read_as_a_throttle() -> None:
    sc = scenario(f'"{GLM}" = ["traffic=slot_full"]', "rate_limit_retries = 1")
    out = GatewayModel(sc).handle("nexus", GLM, T0 + 60)
    failed = next(r for r in records(out) if isinstance(r, FallbackDecision))
    assert classify(failed).failure_class is FailureClass.THROTTLE
    assert failed.detail is not None and "concurrency limit" in failed.detail


def test_retry_after_reaches_the_taxonomy() -> None:
    sc = scenario(f'"{GLM}" = ["traffic=429 retry_after=120"]', "rate_limit_retries = 0")
    out = GatewayModel(sc).handle("nexus", GLM, T0 + 60)
    failed = next(r for r in records(out) if isinstance(r, FallbackDecision))
    assert classify(failed).retry_after_s == 120


# -- with the fallback-pin plugin ---------------------------------------------------------


def outcome_of(out: RequestOutcome) -> RunOutcome:
    last = parse_line(out.lines[-1].text)
    assert isinstance(last, RunOutcome), out.lines[-1].text
    return last


def test_with_the_plugin_a_pinned_run_is_served_by_the_pin_and_reported() -> None:
    sc = scenario("", plugin=True)
    out = GatewayModel(sc).handle("nexus", MINIMAX, T0 + 60)
    assert out.served_by == MINIMAX and out.tried == (MINIMAX,) and not out.trial
    rec = outcome_of(out)
    assert rec.ok and str(rec.model) == MINIMAX and str(rec.pinned) == MINIMAX
    (attempt,) = rec.attempts
    assert attempt.primary and attempt.overridden and attempt.ok


def test_with_the_plugin_a_failed_pinned_attempt_is_named_as_the_primary_in_the_decision() -> None:
    sc = scenario(f'"{MINIMAX}" = ["from 13:30 to 14:00 traffic=5xx"]', plugin=True)
    out = GatewayModel(sc).handle("nexus", MINIMAX, T0 + 60)
    decisions = [r for r in records(out) if isinstance(r, FallbackDecision)]
    # The gateway names its configured primary for the attempt the plugin overrode.
    assert str(decisions[0].candidate) == GLM and str(decisions[0].requested) == GLM
    rec = outcome_of(out)
    assert [str(a.model) for a in rec.attempts][:2] == [MINIMAX, MINIMAX]
    assert rec.attempts[0].overridden and not rec.attempts[0].ok


def test_a_trial_runs_once_on_the_primary_then_the_pin_serves_again() -> None:
    sc = scenario("", plugin=True)
    gw = GatewayModel(sc)
    trial = PinnedTrial(GLM, "t1", T0 + 600)
    first = gw.handle("nexus", MINIMAX, T0 + 60, trial)
    assert first.trial and first.served_by == GLM and first.tried == (GLM,)
    rec = outcome_of(first)
    assert rec.ok and str(rec.model) == GLM and rec.pinned is None
    again = gw.handle("nexus", MINIMAX, T0 + 90, trial)  # the same id: used
    assert not again.trial and again.served_by == MINIMAX
    late = GatewayModel(sc).handle("nexus", MINIMAX, T0 + 601, trial)  # past until
    assert not late.trial and late.served_by == MINIMAX


def test_a_failed_trial_falls_through_the_gateway_s_chain() -> None:
    sc = scenario(f'"{GLM}" = ["from 13:30 to 14:00 traffic=429"]', plugin=True)
    out = GatewayModel(sc).handle("nexus", MINIMAX, T0 + 60, PinnedTrial(GLM, "t1", T0 + 600))
    assert out.trial and out.tried == (GLM, MINIMAX) and out.served_by == MINIMAX
    rec = outcome_of(out)
    assert rec.ok and not rec.attempts[0].ok and rec.attempts[0].status == 429
    assert rec.attempts[0].tries == 4  # the gateway's three same-model retries: the cost
