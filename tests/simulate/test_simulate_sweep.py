"""The failback target, held over every bundled scenario and seeds 1 to 20.

The shipped policy must beat naive on both axes at once, on every seed:

- failbacks into a still-failing primary: at most 1 per agent per incident;
- time from the primary's real recovery to the pin being back: at most 3 minutes
  (no bundled scenario has a Retry-After longer than that to honour).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.simulate import bundled_names, find_scenario, parse_scenario
from watcher.simulate.sweep import (
    SweepRow,
    format_sweep_markdown,
    incidents,
    parse_seeds,
    replace_readme_table,
    sweep,
)

SEEDS = range(1, 21)
TARGET_FAILBACK_MIN = 3.0
TARGET_INTO_FAILURE = 1


@pytest.fixture(scope="module")
def swept() -> list[SweepRow]:
    return sweep([find_scenario(name) for name in bundled_names()], seeds=SEEDS)


@pytest.fixture(scope="module")
def rows(swept: list[SweepRow]) -> dict[tuple[str, str], SweepRow]:
    return {(r.scenario, r.policy): r for r in swept}


def test_the_readme_table_is_this_sweep(swept: list[SweepRow]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert replace_readme_table(readme, format_sweep_markdown(swept)) == readme, (
        "README.md's sweep table is out of date: run .venv/bin/python scripts/sweep-table"
    )


@pytest.mark.parametrize("name", bundled_names())
def test_the_default_policy_meets_the_failback_target_on_every_seed(
    rows: dict[tuple[str, str], SweepRow], name: str
) -> None:
    default = rows[(name, "default")]
    assert default.seeds == len(SEEDS)
    assert default.worst_into_failure <= TARGET_INTO_FAILURE, default
    if default.worst_failback_min is not None:
        assert default.worst_failback_min <= TARGET_FAILBACK_MIN, default


@pytest.mark.parametrize("name", bundled_names())
def test_the_default_policy_never_does_worse_than_naive(
    rows: dict[tuple[str, str], SweepRow], name: str
) -> None:
    default, naive = rows[(name, "default")], rows[(name, "naive")]
    assert default.worst_into_failure <= max(naive.worst_into_failure, TARGET_INTO_FAILURE)
    if naive.worst_failback_min is not None and default.worst_failback_min is not None:
        assert default.worst_failback_min <= max(naive.worst_failback_min, TARGET_FAILBACK_MIN)


def test_the_sweep_sees_the_flap_naive_makes(rows: dict[tuple[str, str], SweepRow]) -> None:
    # The measure can fail: naive flips back into the 20 May throttle on every seed.
    assert rows[("2026-05-20-throttle-flap", "naive")].worst_into_failure >= 6
    assert rows[("shared-primary-probes-lie", "naive")].worst_into_failure >= 6


def test_the_sweep_sees_a_slow_failback(rows: dict[tuple[str, str], SweepRow]) -> None:
    # The watcher before 14 May never failed back: the stale pin's three paid hours.
    row = rows[("2026-05-14-stale-pin", "original")]
    assert row.worst_failback_min is not None and row.worst_failback_min > 180
    assert row.median_paid_min > 180


def test_incidents_are_the_stretches_where_real_traffic_fails() -> None:
    sc = parse_scenario("""
start = "2026-05-20T13:30:00Z"
duration = "2h"
[agents]
a = ["p/x", "p/y"]
[timeline]
"p/x" = ["from 14:00 to 14:10 traffic=429", "from 14:10 to 14:20 traffic=503",
         "from 14:40 to 14:45 traffic=ok probe=429"]
""")
    assert incidents(sc, "p/x") == [(sc.start + 1800, sc.start + 3000)]
    assert incidents(sc, "p/y") == []


@pytest.mark.parametrize(("text", "seeds"), [
    ("1-3", [1, 2, 3]), ("7", [7]), ("1,4,9-10", [1, 4, 9, 10]), ("2-3,3", [2, 3]),
])
def test_seed_ranges(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "5-2", "-1", "1-x"])
def test_bad_seed_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds(text)


def test_the_sweep_command_prints_one_row_per_scenario_and_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "--seeds", "1-2", "slot-contention", "rate-limit-outage-15m"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 seed(s) per scenario and policy")
    table = out.splitlines()[2:]
    assert len(table) == 2 * 3
    assert [line.split()[1] for line in table[:3]] == ["original", "naive", "default"]


def test_the_sweep_command_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--seeds", "3", "slot-contention", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seeds"] == [3] and len(data["rows"]) == 3
    assert {"worst_failback_after_recovery_minutes", "worst_failed_trial_turns"} <= set(
        data["rows"][0]
    )


def test_the_sweep_command_refuses_a_policy_and_bad_seeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "--seeds", "1-2", "--policy", "naive"]) == 2
    assert "drop --policy" in capsys.readouterr().err
    assert main(["simulate", "--seeds", "x"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    assert "name one scenario" in capsys.readouterr().err
