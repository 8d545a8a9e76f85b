"""The runner drives real parts: the pin file on disk, the probe client, dedup, cards."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from watcher.alerts.cards import TELEGRAM_LIMIT
from watcher.alerts.dedup import DedupPolicy
from watcher.pins import schema as pinfile
from watcher.simulate import (
    bundled_names,
    compare,
    find_scenario,
    format_comparison,
    parse_scenario,
    policy_for,
    run_scenario,
    summarize,
)
from watcher.simulate.runner import Simulation

GLM = "ollama/glm-5.1:cloud"
FLAP = "2026-05-20-throttle-flap"


def test_a_run_is_deterministic_for_its_seed() -> None:
    scenario = find_scenario(FLAP)
    first = summarize(run_scenario(scenario, policy_for(scenario, "default")))
    second = summarize(run_scenario(scenario, policy_for(scenario, "default")))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_the_gateway_follows_the_pin_file_the_real_store_wrote(tmp_path: Path) -> None:
    scenario = find_scenario("2026-05-14-stale-pin")
    result = run_scenario(scenario, policy_for(scenario, "default"), workdir=tmp_path)
    pin_path = tmp_path / "fallback-state.json"
    on_disk = pinfile.loads(pin_path.read_bytes())
    assert {a: p.current_serving for a, p in on_disk.agents.items()} == result.final_pins
    assert stat.S_IMODE(pin_path.stat().st_mode) == 0o640
    assert (tmp_path / "fallback-state.json.lock").exists()
    # While pinned to the paid fallback, new requests started there, as the file said.
    paid_starts = [r for r in result.requests
                   if r.agent == "nexus" and r.requested == "deepseek/deepseek-v4-flash"]
    assert paid_starts and all(r.served_by == r.requested for r in paid_starts)
    assert result.pin_writes >= len(result.pin_changes)


def test_a_probe_answered_by_another_model_never_brings_the_primary_back() -> None:
    # GLM-5.1 fails real traffic for ten minutes. Its own traffic would be fine after
    # 14:10, but until 14:30 the shared socket answers probes with another model.
    scenario = parse_scenario(f"""
start = "2026-05-20T13:30:00Z"
duration = "2h"
seed = 7
[agents]
nexus = ["{GLM}", "ollama/minimax-m2.7:cloud"]
[traffic]
nexus = 2
[timeline]
"{GLM}" = [
  "from 14:00 to 14:10 traffic=5xx",
  "from 14:10 to 14:30 traffic=ok probe=wrong_model",
]
""")
    at_1430 = scenario.start + 60 * 60
    for name in ("naive", "default"):
        result = run_scenario(scenario, policy_for(scenario, name), name)
        back = [c.t for c in result.pin_changes if c.to_model == GLM]
        assert back, name
        assert at_1430 < back[0] <= at_1430 + 180, name


def test_a_wider_dedup_window_hides_flip_cards_but_counts_every_one(tmp_path: Path) -> None:
    scenario = find_scenario(FLAP)
    sim = Simulation(
        scenario, policy_for(scenario, "naive"), "naive", tmp_path,
        dedup_policy=DedupPolicy(window_s=600.0),
    )
    result = sim.run()
    summary = summarize(result)
    cards = summary["cards"]
    assert cards["suppressed"] > 0
    assert cards["suppressed_by_reason"].get("dedup", 0) > 0
    assert cards["suppressed_uncounted"] == 0
    footers = [c for c in result.cards if c.sent and c.suppressed_since_last]
    assert footers
    for card in footers:
        assert card.text is not None
        assert f"+{card.suppressed_since_last} similar suppressed" in card.text
    # Oversight of the oversight: when suppression outweighs alerting, a card says so.
    assert cards["sent_by_type"].get("SUPPRESSION_DOMINANT", 0) >= 1


def test_every_sent_card_is_rendered_for_telegram() -> None:
    scenario = find_scenario("both-fallbacks-down")
    result = run_scenario(scenario, policy_for(scenario, "default"))
    sent = [c for c in result.cards if c.sent]
    assert sent
    for card in sent:
        assert card.text is not None and 0 < len(card.text) <= TELEGRAM_LIMIT
        assert "<b>" in card.text
    unsent = [c for c in result.cards if not c.sent]
    assert all(c.text is None for c in unsent)


def test_compare_puts_naive_and_default_side_by_side_for_every_bundled_scenario() -> None:
    rows = compare()
    by = {(r.scenario, r.policy): r for r in rows}
    assert len(rows) == 2 * len(bundled_names()) and len(by) == len(rows)
    flap_naive, flap_default = by[(FLAP, "naive")], by[(FLAP, "default")]
    assert flap_naive.flips > flap_default.flips
    assert flap_naive.cards > flap_default.cards
    assert flap_naive.failbacks_into_failure > flap_default.failbacks_into_failure
    table = format_comparison(rows)
    for name in {r.scenario for r in rows}:
        assert name in table
    assert "min to failback" in table and "hidden" in table
