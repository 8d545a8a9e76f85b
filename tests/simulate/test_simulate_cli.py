"""``failover-watcher simulate``: output, the ``--json`` contract, policies, exit codes."""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.simulate import bundled_names

REPO = Path(__file__).resolve().parents[2]

# The documented --json shape (scenarios/README.md). Changing it means schema 2.
TOP_KEYS = {"schema", "scenario", "policy", "timeline", "agents", "cards", "totals"}
SCENARIO_KEYS = {
    "name", "description", "start", "end", "duration_minutes", "probe_interval_s", "seed",
    "paid_providers",
}
AGENT_KEYS = {
    "chain", "pin_changes", "failbacks", "failbacks_into_failure", "paid_minutes",
    "fallback_minutes", "minutes_to_failback", "max_failback_delay_minutes", "requests",
    "requests_hit_failing_primary", "requests_exhausted", "requests_paid", "final_pin",
    "on_primary_at_end",
}
CARD_KEYS = {
    "sent", "suppressed", "suppressed_uncounted", "sent_by_type", "suppressed_by_type",
    "suppressed_by_reason",
}
TOTAL_KEYS = {
    "pin_changes", "failbacks", "failbacks_into_failure", "paid_minutes", "fallback_minutes",
    "minutes_to_failback", "max_failback_delay_minutes", "requests",
    "requests_hit_failing_primary", "requests_exhausted", "requests_paid",
    "chain_exhausted_incidents", "agents_off_primary_at_end", "cards_sent", "cards_suppressed",
    "probes", "lines", "unparsed_lines", "pin_writes", "audit_records",
}
PIN_ENTRY = {"t", "minute", "kind", "agent", "from", "to"}
CARD_ENTRY = {
    "t", "minute", "kind", "type", "agents", "from", "to", "failure_class", "outcome",
    "reason", "suppressed_since_last",
}


def test_simulate_prints_the_timeline_then_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["simulate", "2026-05-14-stale-pin"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.index("Timeline (UTC)") < out.index("Summary") < out.index("Expectations")
    # Both cloud models fail the one run (the plugin reports both attempts): the pin
    # goes straight to the paid fallback.
    assert "pin   nexus: ollama/glm-5.1:cloud → deepseek/deepseek-v4-flash" in out
    assert "card  PAID_PROVIDER_SUCCESS [nexus]" in out
    assert "minutes on a paid provider:" in out


def test_simulate_json_keeps_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "2026-05-20-throttle-flap", "--policy", "naive", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1
    assert set(data) == TOP_KEYS | {"expectations"}
    assert set(data["scenario"]) == SCENARIO_KEYS
    assert data["policy"] == {"name": "naive", "version": "naive"}
    assert set(data["agents"]) == {"nexus", "hermes", "newton", "leonardo", "george"}
    assert all(set(a) == AGENT_KEYS for a in data["agents"].values())
    assert set(data["cards"]) == CARD_KEYS
    assert set(data["totals"]) == TOTAL_KEYS
    kinds = {e["kind"] for e in data["timeline"]}
    assert kinds == {"pin", "card"}
    for entry in data["timeline"]:
        assert set(entry) == (PIN_ENTRY if entry["kind"] == "pin" else CARD_ENTRY)
    minutes = [e["minute"] for e in data["timeline"]]
    assert minutes == sorted(minutes)
    assert all(set(e) == {"check", "actual", "held", "error"} for e in data["expectations"])


def test_a_policy_file_that_never_fails_back_reproduces_the_three_hour_stale_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The watcher before 14 May had no failback at all.
    policy = tmp_path / "no-failback.toml"
    policy.write_text("# the pre-14-May watcher\nfailback = false\n")
    code = main(["simulate", "2026-05-14-stale-pin", "--policy", str(policy), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0  # expectations belong to the named policies only
    assert "expectations" not in data
    assert data["policy"]["name"] == f"file:{policy}"
    nexus = data["agents"]["nexus"]
    assert nexus["final_pin"] == "deepseek/deepseek-v4-flash"
    assert nexus["paid_minutes"] > 180  # the incident's three hours, and counting


def test_the_original_policy_is_the_watcher_that_never_failed_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["simulate", "2026-05-14-stale-pin", "--policy", "original", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["policy"] == {"name": "original", "version": "original"}
    assert data["agents"]["nexus"]["final_pin"] == "deepseek/deepseek-v4-flash"
    assert data["agents"]["nexus"]["paid_minutes"] > 180


def test_a_bad_policy_file_is_a_usage_error_naming_every_bad_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text("rise = 0\ncolour = 'blue'\n")
    code = main(["simulate", "slot-contention", "--policy", str(policy)])
    err = capsys.readouterr().err
    assert code == 2
    assert "rise" in err and "colour" in err


def test_an_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "no-such-incident"]) == 2
    err = capsys.readouterr().err
    assert "not a bundled scenario" in err and "slot-contention" in err


def test_a_broken_expectation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "calm.toml"
    scenario.write_text("""
start = "2026-05-20T13:30:00Z"
duration = "30m"
[agents]
ops = ["ollama/a:cloud", "ollama/b:cloud"]
[traffic]
ops = 1
[expect]
default = [
  "totals.pin_changes == 0",   # holds: nothing fails
  "totals.pin_changes >= 99",  # cannot hold
]
""")
    assert main(["simulate", str(scenario)]) == 1
    out = capsys.readouterr().out
    assert "Expectations (1/2 held)" in out and "FAIL totals.pin_changes >= 99" in out


def test_the_installed_package_ships_every_bundled_scenario() -> None:
    # Bundled scenarios live in watcher/simulate/scenarios/ (the single source of
    # truth); pyproject's package-data must carry them into the wheel.
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["watcher"]
    folder = REPO / "watcher" / "simulate" / "scenarios"
    files = sorted(p.relative_to(REPO / "watcher").as_posix() for p in folder.iterdir())
    assert len([f for f in files if f.endswith(".toml")]) == len(bundled_names())
    missing = [f for f in files if not any(fnmatch(f, pat) for pat in patterns)]
    assert not missing, (
        f"not in [tool.setuptools.package-data] watcher: {missing}; "
        'add "simulate/scenarios/*"'
    )
