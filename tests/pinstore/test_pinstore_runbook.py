"""The recovery runbook, run verbatim with the real jq and flock against a watcher's pin."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.pinstore.conftest import PIN_EDIT, PYTHON, ROOT, run_pin_edit
from watcher.pins import schema as pinfile
from watcher.pins.schema import iso
from watcher.pins.store import AdoptedEdit, NoChange, PinStore

EXAMPLE = ROOT / "state" / "fallback-state.example.json"


def runbook() -> list[tuple[str, str]]:
    """(comment, command) pairs from ``pin-edit --help``, the runbook's one source."""
    out = subprocess.run([str(PIN_EDIT), "--help"], capture_output=True, text=True, check=True)
    lines = out.stdout.split("Recovery runbook", 1)[1].splitlines()[1:]
    pairs, comment = [], ""
    for line in lines:
        text = line.strip()
        if text.startswith("#"):
            comment = text
        elif text:
            pairs.append((comment, text))
    return pairs


def recipe(words: str) -> str:
    matches = [cmd for comment, cmd in runbook() if words in comment]
    assert len(matches) == 1, f"one runbook line for {words!r}"
    return matches[0]


def run_line(line: str, pin: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIN": str(pin), "FAILOVER_WATCHER_PYTHON": PYTHON}
    return subprocess.run(
        ["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def watcher(pin_path: Path) -> PinStore:
    """A running watcher's store holding the example state, with a live cooldown."""
    store = PinStore(pin_path)
    state = pinfile.loads(EXAMPLE.read_text())
    cloud = "ollama/kimi-k2.5:cloud"
    models = dict(state.models)
    models[cloud] = models[cloud].model_copy(update={"cooldown_until": iso(time.time() + 600)})
    with store.locked() as txn:
        txn.read()
        txn.write(state.model_copy(update={"models": models}))
    return store


def test_runbook_names_the_default_pin_path() -> None:
    assert runbook()[0] == ("", "PIN=/var/lib/failover-watcher/fallback-state.json")


def test_putting_an_agent_back_on_its_primary_is_adopted_by_the_watcher(
    watcher: PinStore,
) -> None:
    done = run_line(recipe("back on its primary"), watcher.path)
    assert done.returncode == 0, done.stderr
    got = watcher.read()
    assert isinstance(got.edit, AdoptedEdit)
    orch = got.pins.agents["orchestrator"]
    assert orch.current_serving == orch.primary
    assert (orch.in_fallback, orch.hold, orch.transient_throttle_until) == (False, None, None)
    assert got.pins.agents["coder"] == got.edit.previous.agents["coder"]  # type: ignore[union-attr]


def test_holding_an_agent_on_a_fallback_is_adopted_with_who_and_until(watcher: PinStore) -> None:
    run_line(recipe("back on its primary"), watcher.path)
    watcher.read()
    done = run_line(recipe("Hold an agent"), watcher.path)
    assert done.returncode == 0, done.stderr
    got = watcher.read()
    assert isinstance(got.edit, AdoptedEdit)
    orch = got.pins.agents["orchestrator"]
    assert orch.current_serving == "deepseek/deepseek-v4-flash" and orch.in_fallback
    assert orch.hold is not None
    assert (orch.hold.model, orch.hold.by, orch.hold.note) == (
        "deepseek/deepseek-v4-flash",
        "alice",
        "primary throttled",
    )
    until = pinfile.from_iso(orch.hold.until)
    assert until is not None and abs(until - (time.time() + 4 * 3600)) < 60


def test_releasing_all_holds_is_adopted_and_leaves_no_hold(watcher: PinStore) -> None:
    run_line(recipe("Hold an agent"), watcher.path)
    assert sum(a.hold is not None for a in watcher.read().pins.agents.values()) == 2
    done = run_line(recipe("Release all holds"), watcher.path)
    assert done.returncode == 0, done.stderr
    got = watcher.read()
    assert isinstance(got.edit, AdoptedEdit)
    assert all(a.hold is None for a in got.pins.agents.values())


def test_inspect_lines_show_fallbacks_holds_and_running_cooldowns(watcher: PinStore) -> None:
    before = watcher.path.read_bytes()
    fallback = run_line(recipe("agents in fallback"), watcher.path)
    holds = run_line(recipe("Inspect: holds"), watcher.path)
    cooldowns = run_line(recipe("cooldowns"), watcher.path)
    assert fallback.stdout.splitlines() == [
        "coder\topenai/gpt-5.3-codex\t2026-05-20T13:05:44Z\ttimeout\talice",
        "orchestrator\tdeepseek/deepseek-v4-flash\t2026-05-20T14:38:02Z\tthrottle\t-",
    ]
    assert holds.stdout.splitlines() == [
        "coder\topenai/gpt-5.3-codex\talice\t2026-05-20T18:00:00Z\t"
        "long refactor in flight; keep it on codex until evening"
    ]
    [line] = cooldowns.stdout.splitlines()
    model, state, left = line.split("\t")
    assert (model, state) == ("ollama/kimi-k2.5:cloud", "throttled")
    assert 590 <= int(left.removesuffix("s left")) <= 600
    assert watcher.path.read_bytes() == before
    assert isinstance(watcher.read().edit, NoChange)


def test_pin_edit_refuses_an_invalid_result_and_leaves_the_pin_untouched(
    watcher: PinStore,
) -> None:
    before = watcher.path.read_bytes()
    refused = run_pin_edit(watcher.path, '.agents.coder.current_serving = "openai/gpt-4o"')
    assert refused.returncode == 1
    assert "refused, pin file untouched" in refused.stderr
    assert "agents.coder: current_serving 'openai/gpt-4o' is not in the agent's chain" in (
        refused.stderr
    )
    bad_jq = run_pin_edit(watcher.path, ".agents[")
    assert bad_jq.returncode == 1
    assert "jq failed" in bad_jq.stderr
    assert watcher.path.read_bytes() == before
    assert isinstance(watcher.read().edit, NoChange)
    assert sorted(p.name for p in watcher.path.parent.iterdir()) == [
        "fallback-state.json",
        "fallback-state.json.last-good",
        "fallback-state.json.lock",
    ], "no temp file left behind"


def test_pin_edit_keeps_mode_0640_and_dry_run_writes_nothing(watcher: PinStore) -> None:
    before = watcher.path.read_bytes()
    dry = run_pin_edit(watcher.path, "--dry-run", ".agents |= map_values(.hold = null)")
    assert dry.returncode == 0
    assert pinfile.loads(dry.stdout).agents["coder"].hold is None
    assert watcher.path.read_bytes() == before
    run_pin_edit(watcher.path, ".agents |= map_values(.hold = null)", check=True)
    assert watcher.path.stat().st_mode & 0o777 == 0o640


def test_pin_edit_usage_errors_exit_2(pin_path: Path) -> None:
    assert run_pin_edit(pin_path, ".").returncode == 2  # no pin file there
    assert run_pin_edit(pin_path, "--bogus", ".").returncode == 2
    assert run_pin_edit(pin_path).returncode == 2


def test_every_runbook_line_in_the_readme_is_one_of_the_tested_lines() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Recovery runbook", 1)[1]
    block = section.split("```", 2)[1]
    commands = [
        line.strip()
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    tested = {cmd for _comment, cmd in runbook()}
    assert len(commands) >= 5
    assert [c for c in commands if c not in tested] == []
