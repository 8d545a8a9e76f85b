"""The incidents as regression tests: one per bundled scenario, asserting the summary.

The numbers live in each scenario's ``[expect]`` table, with a comment saying why;
``test_every_bundled_scenario_holds_its_documented_expectations`` holds the code to
all of them. The tests below add what a number cannot say: order, timing, content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from watcher.core.transitions import NEVER_SUPPRESSED, TransitionType
from watcher.simulate import bundled_names, check_expectations, find_scenario
from watcher.simulate.runner import SimulationResult

Run = tuple[SimulationResult, dict[str, Any]]
Simulated = Callable[[str, str], Run]

BUNDLED = [
    "2026-04-mid-task-outage",
    "2026-04-mid-task-outage-first-fallback-down",
    "2026-05-14-stale-pin",
    "2026-05-20-throttle-flap",
    "both-fallbacks-down",
    "rate-limit-outage-15m",
    "shared-primary-probes-lie",
    "slot-contention",
]
NEXUS_PRIMARY = "ollama/glm-5.1:cloud"


def test_the_issue_s_scenarios_are_all_bundled() -> None:
    assert bundled_names() == BUNDLED


@pytest.mark.parametrize("policy", ["naive", "default"])
@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_scenario_holds_its_documented_expectations(
    simulated: Simulated, name: str, policy: str
) -> None:
    scenario = find_scenario(name)
    assert scenario.expect.get(policy), f"{name} documents no expectations for {policy}"
    _, summary = simulated(name, policy)
    failed = [c for c in check_expectations(summary, scenario.expect[policy]) if not c.held]
    assert not failed, "\n".join(f"{c.check}: {c.error or c.actual}" for c in failed)


@pytest.mark.parametrize("policy", ["naive", "default"])
@pytest.mark.parametrize("name", BUNDLED)
def test_every_gateway_line_is_read_by_the_real_parser(
    simulated: Simulated, name: str, policy: str
) -> None:
    _, summary = simulated(name, policy)
    assert summary["totals"]["lines"] > 0
    assert summary["totals"]["unparsed_lines"] == 0


# -- 20 May: the flap ----------------------------------------------------------------


def test_throttle_flap_naive_flips_back_into_the_throttle_at_least_six_times(
    simulated: Simulated,
) -> None:
    result, summary = simulated("2026-05-20-throttle-flap", "naive")
    nexus = summary["agents"]["nexus"]
    assert nexus["failbacks_into_failure"] >= 6
    # Every RECOVERY card was "technically true": each followed two good probes.
    recoveries = [c for c in result.cards if c.alert.type is TransitionType.RECOVERY]
    assert len(recoveries) >= 6
    # And the real requests paid for it.
    assert nexus["requests_hit_failing_primary"] >= 6


def test_throttle_flap_default_flips_at_most_once_and_says_why(simulated: Simulated) -> None:
    result, summary = simulated("2026-05-20-throttle-flap", "default")
    assert summary["totals"]["failbacks_into_failure"] <= 1
    sent = [c for c in result.cards if c.sent]
    types = [c.alert.type for c in sent]
    assert TransitionType.THROTTLE_COOLDOWN in types
    # The first card about the throttle is the cooldown itself, with its end time.
    first = next(c for c in sent if c.alert.type is TransitionType.THROTTLE_COOLDOWN)
    assert first.alert.cooldown_until is not None and first.alert.cooldown_until > first.t
    assert first.text is not None and "cooldown" in first.text.lower()
    # No failback while real traffic was still throttled, after the one allowed.
    start = find_scenario("2026-05-20-throttle-flap").start
    throttle_end = start + 70 * 60  # 14:40
    late_failbacks = [
        c for c in result.pin_changes
        if c.agent == "nexus" and c.to_model == NEXUS_PRIMARY and c.t >= throttle_end
    ]
    assert len(late_failbacks) == 1  # the real one, after the window


def test_throttle_flap_default_hides_nothing_without_counting_it(
    simulated: Simulated,
) -> None:
    result, summary = simulated("2026-05-20-throttle-flap", "default")
    assert summary["cards"]["suppressed_uncounted"] == 0
    # Every alert the core raised is accounted for: sent, or suppressed with a reason.
    for card in result.cards:
        assert card.sent or card.reason is not None
    # Never-suppressed types really were never suppressed.
    assert not [c for c in result.cards if not c.sent and c.alert.type in NEVER_SUPPRESSED]
    # The default policy needs far fewer cards than naive for the same afternoon.
    _, naive = simulated("2026-05-20-throttle-flap", "naive")
    assert summary["cards"]["sent"] * 3 <= naive["cards"]["sent"]


# -- 14 May: the stale pin ----------------------------------------------------------------


def test_stale_pin_default_fails_back_within_three_minutes_of_recovery(
    simulated: Simulated,
) -> None:
    result, summary = simulated("2026-05-14-stale-pin", "default")
    scenario = find_scenario("2026-05-14-stale-pin")
    wave_end = scenario.start + 24 * 60  # 16:09, when the 401 wave stops
    nexus = summary["agents"]["nexus"]
    assert nexus["max_failback_delay_minutes"] <= 3
    back = [c for c in result.pin_changes if c.agent == "nexus" and c.to_model == NEXUS_PRIMARY]
    assert back and wave_end < back[-1].t <= wave_end + 180
    # Paid minutes are bounded by the wave (5 min) plus that delay.
    assert nexus["paid_minutes"] <= 5 + nexus["max_failback_delay_minutes"] + 0.5
    assert nexus["final_pin"] == NEXUS_PRIMARY


# -- mid-April: the outage and its worse variant ----------------------------------------------


def test_mid_task_outage_two_deep_chain_keeps_the_session_up(simulated: Simulated) -> None:
    result, summary = simulated("2026-04-mid-task-outage", "default")
    assert summary["totals"]["requests_exhausted"] == 0
    served = {r.served_by for r in result.requests if r.agent == "nexus"}
    assert "ollama/glm-5.1:cloud" in served  # the first fallback carried the session
    assert "ollama/glm-5:cloud" not in served  # the second was present, never needed


def test_mid_task_outage_with_first_fallback_down_is_carried_by_the_second(
    simulated: Simulated,
) -> None:
    result, summary = simulated("2026-04-mid-task-outage-first-fallback-down", "default")
    assert summary["totals"]["requests_exhausted"] == 0
    pins = [c.to_model for c in result.pin_changes if c.agent == "nexus"]
    assert pins[:2] == ["ollama/glm-5.1:cloud", "ollama/glm-5:cloud"]
    assert pins[-1] == "ollama/minimax-m2.7:cloud"
    served = {r.served_by for r in result.requests if r.agent == "nexus"}
    assert "ollama/glm-5:cloud" in served


# -- slot contention -----------------------------------------------------------------------


def test_slot_full_is_transient_and_the_job_returns_to_its_primary(
    simulated: Simulated,
) -> None:
    result, summary = simulated("slot-contention", "default")
    review = summary["agents"]["review"]
    assert review["requests_exhausted"] == 0
    assert review["final_pin"] == "ollama/minimax-m2.7:cloud"
    cooldowns = [
        c for c in result.cards
        if c.sent and c.alert.type is TransitionType.THROTTLE_COOLDOWN
    ]
    assert cooldowns and all(c.alert.failure_class == "throttle" for c in cooldowns)
    # Agents that never touch the fourth model are left alone.
    assert summary["agents"]["hermes"]["pin_changes"] == 0
    assert summary["agents"]["leonardo"]["pin_changes"] == 0


# -- chain exhausted ----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["naive", "default"])
def test_exhausted_chain_sends_exactly_one_hard_failure_card_per_incident(
    simulated: Simulated, policy: str
) -> None:
    result, summary = simulated("both-fallbacks-down", policy)
    scenario = find_scenario("both-fallbacks-down")
    incidents = [(scenario.start + 35 * 60, scenario.start + 45 * 60),  # 10:05-10:15
                 (scenario.start + 210 * 60, scenario.start + 220 * 60)]  # 13:00-13:10
    hard = [c for c in result.cards if c.alert.type is TransitionType.HARD_FAILURE]
    assert all(c.sent for c in hard)
    assert summary["totals"]["chain_exhausted_incidents"] == len(incidents)
    for start, end in incidents:
        inside = [c for c in hard if start <= c.t < end]
        assert len(inside) == 1, f"{len(inside)} HARD_FAILURE cards in one incident"
        assert inside[0].alert.agents == ("nexus",)
        assert inside[0].text is not None and "exhausted" in inside[0].text
    assert len(hard) == len(incidents)
