"""The scenario file format: what it accepts, and that it lists every error at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.simulate import bundled_names, find_scenario, parse_scenario
from watcher.simulate.model import POLICY_NAMES, Answer, ScenarioError

BASE = """
name = "t"
start = "2026-05-20T13:30:00Z"
duration = "2h"
[agents]
nexus = ["ollama/glm-5.1:cloud", "ollama/minimax-m2.7:cloud", "deepseek/deepseek-v4-flash"]
[traffic]
nexus = 2
"""

T0 = 1779283800.0  # 2026-05-20T13:30:00Z


def scenario(extra: str = "") -> object:
    return parse_scenario(BASE + extra)


def test_traffic_and_probe_answers_are_set_separately_to_reproduce_the_flap() -> None:
    sc = parse_scenario(BASE + """
[timeline]
"ollama/glm-5.1:cloud" = ["from 14:00 to 14:40 traffic=429 probe=ok"]
""")
    assert sc.start == T0
    inside = T0 + 45 * 60
    assert sc.traffic_answer("ollama/glm-5.1:cloud", inside) == Answer("429")
    assert sc.probe_answer("ollama/glm-5.1:cloud", inside).ok
    assert sc.traffic_answer("ollama/glm-5.1:cloud", T0 + 70 * 60).ok  # 14:40 is the end


def test_one_side_given_applies_to_both_and_retry_after_is_kept() -> None:
    sc = parse_scenario(BASE + """
[timeline]
"ollama/glm-5.1:cloud" = ["from +10m to +20m traffic=429 retry_after=30s"]
""")
    t = T0 + 15 * 60
    assert sc.traffic_answer("ollama/glm-5.1:cloud", t) == Answer("429", 30.0)
    assert sc.probe_answer("ollama/glm-5.1:cloud", t) == Answer("429", 30.0)


def test_a_provider_wildcard_covers_its_models_and_later_windows_win() -> None:
    sc = parse_scenario(BASE + """
[timeline]
"ollama/*" = ["from 14:00 to 15:00 traffic=5xx"]
"ollama/glm-5.1:cloud" = ["from 14:10 to 14:20 traffic=ok"]
""")
    assert sc.traffic_answer("ollama/minimax-m2.7:cloud", T0 + 45 * 60).kind == "5xx"
    assert sc.traffic_answer("ollama/glm-5.1:cloud", T0 + 45 * 60).ok
    assert sc.traffic_answer("ollama/glm-5.1:cloud", T0 + 55 * 60).kind == "5xx"
    assert sc.traffic_answer("deepseek/deepseek-v4-flash", T0 + 45 * 60).ok


def test_traffic_can_come_in_windows() -> None:
    sc = parse_scenario(BASE.replace("nexus = 2\n", 'nexus = ["4 from 14:00 to 15:00"]\n'))
    (window,) = sc.traffic["nexus"]
    assert (window.start, window.end, window.rpm) == (T0 + 1800, T0 + 5400, 4.0)


def test_a_clock_time_before_the_start_means_the_next_day() -> None:
    sc = parse_scenario(BASE.replace('"2h"', '"24h"') + """
[timeline]
"ollama/glm-5.1:cloud" = ["from 02:00 to 02:30 traffic=401"]
""")
    next_day_2am = T0 + (12 * 60 + 30) * 60
    assert sc.traffic_answer("ollama/glm-5.1:cloud", next_day_2am).kind == "401"


def test_every_problem_in_a_broken_scenario_is_reported_at_once() -> None:
    text = """
start = "yesterday"
surprise = 1
[agents]
nexus = ["not-a-ref"]
[traffic]
ghost = 3
[timeline]
"ollama/unknown:cloud" = ["from 14:00 to 13:00 traffic=418"]
[expect]
default = ["flips are low"]
optimistic = ["totals.pin_changes == 0"]
"""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="broken.toml")
    problems = "\n".join(info.value.problems)
    for needle in (
        "unknown top-level key 'surprise'",
        "start",
        "duration is required",
        "agents.nexus must be a non-empty list",
        "traffic.ghost: no such agent",
        "no agent's chain has that model",
        "expect.default 'flips are low'",
        "expect.optimistic",
    ):
        assert needle in problems, f"missing {needle!r} in:\n{problems}"
    assert str(info.value).startswith("broken.toml: ")


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("from 14:00 to 14:40 traffic=wrong_model", "wrong_model is a probe answer"),
        ("from 14:00 to 14:40 traffic=418", "unknown answer '418'"),
        ("from 14:00 to 14:40 traffic=401 retry_after=5", "retry_after only goes with"),
        ("from 14:00", "give traffic=..., probe=..., or both"),
        ("from 14:00 to 14:40 traffic=ok colour=blue", "unknown key(s) colour"),
        ("from 25:00 to 26:00 traffic=5xx", "not a time of day"),
    ],
)
def test_a_bad_timeline_entry_says_what_is_wrong(spec: str, why: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BASE + f'[timeline]\n"ollama/glm-5.1:cloud" = ["{spec}"]\n')
    assert why in str(info.value)


def test_chains_can_come_from_an_openclaw_json_next_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "openclaw.json").write_text(
        '{ // JSON5, as the gateway writes it\n'
        ' "agents": {"entries": {"ops": {"model": {"primary": "ollama/a:cloud",'
        ' "fallbacks": ["ollama/b:cloud"]}}}},}\n'
    )
    (tmp_path / "s.toml").write_text(
        'start = "2026-05-20T13:30:00Z"\nduration = "1h"\ngateway_config = "openclaw.json"\n'
        "[traffic]\nops = 1\n"
    )
    sc = find_scenario(tmp_path / "s.toml")
    assert sc.chains == {"ops": ("ollama/a:cloud", "ollama/b:cloud")}
    assert sc.name == "s"


def test_an_unknown_scenario_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ScenarioError) as info:
        find_scenario("2026-13-nothing-happened")
    assert "2026-05-20-throttle-flap" in str(info.value)


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_scenario_documents_expectations_for_both_policies(name: str) -> None:
    sc = find_scenario(name)
    # Every scenario says what the shipped and the naive policy must do ("original"
    # expectations are optional).
    assert {"default", "naive"} <= set(sc.expect) <= set(POLICY_NAMES)
    assert sc.description
    assert len(sc.chains) >= 1 and all(len(c) >= 2 for c in sc.chains.values())
    # The numbers are documented: each scenario file explains its checks in comments.
    text = Path(sc.source or "").read_text()
    assert text.count("#") >= len(sc.expect["default"])
