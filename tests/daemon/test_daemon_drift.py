"""Config drift on real files: every change of openclaw.json's chains is one
CHAINS_CHANGED card with the diff per agent and the writer (the real breaker, or
"not the breaker"), and the chain check's findings are announced once when they
appear and once when they clear."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.breaker.conftest import GATEWAY_JSON
from tests.breaker.test_breaker_daemon import cut_written, run_daemon
from tests.rigs.file_world import write_file_world
from watcher.config import load_settings
from watcher.shell.loop import Daemon
from watcher.shell.watcher import Watcher

DEEPSEEK = "deepseek/deepseek-v4-flash"
CHAINS = {
    "nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
    "hermes": ["ollama/kimi-k2.5:cloud", "deepseek/deepseek-v4-flash", "ollama/glm-5:cloud"],
}


def write_openclaw(path: Path, chains: dict[str, list[str]]) -> None:
    entries = {a: {"model": {"primary": c[0], "fallbacks": c[1:]}} for a, c in chains.items()}
    path.write_text(json.dumps({"agents": {"entries": entries}}))


def open_watcher(root: Path, gateway: Path, breaker_state: Path) -> Watcher:
    """A watcher in ``root/watcher`` (its state apart from the breaker's)."""
    root = root / "watcher"
    root.mkdir()
    config = write_file_world(
        root, {}, openclaw_path=gateway,
        top_toml=f'breaker_state_dir = "{breaker_state}"\n',
    )
    return Watcher.open(load_settings(config))


def cards(watcher: Watcher, event: str) -> list[Any]:
    return [c for c in watcher.intake.outbox.cards() if c.event == event]


def audit_records(watcher: Watcher, type_: str) -> list[dict[str, Any]]:
    """The structured records of ``type_`` (the card's own audit twin aside)."""
    lines = (watcher.state_dir / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r for r in records if r.get("type") == type_ and "writer" in r.get("data", {})]


def test_a_human_edit_is_one_card_with_the_diff_naming_no_breaker(tmp_path: Path) -> None:
    gateway = tmp_path / "openclaw.json"
    write_openclaw(gateway, CHAINS)
    watcher = open_watcher(tmp_path, gateway, tmp_path / "no-breaker-here")
    try:
        assert cards(watcher, "CHAIN_LINT") == []  # first start: recorded, not announced
        edited = {
            # the 16-hour incident's shape: the primary demoted behind the operator's back
            "nexus": [DEEPSEEK, "ollama/glm-5.1:cloud", "ollama/glm-5:cloud"],
            "hermes": ["ollama/kimi-k2.5:cloud", "ollama/glm-5:cloud", DEEPSEEK],
            "newbie": ["ollama/qwen3:8b", "ollama/glm-5:cloud"],
        }
        write_openclaw(gateway, edited)
        Daemon(watcher).poll_chains()
        (card,) = cards(watcher, "CHAINS_CHANGED")
        assert card.alert.extra["writer"] == "not the breaker"
        detail = card.alert.detail or ""
        assert "nexus: primary ollama/glm-5.1:cloud -> deepseek/deepseek-v4-flash" in detail
        assert "hermes: fallbacks reordered: ollama/glm-5:cloud > deepseek/deepseek-v4-flash" \
            in detail
        assert "newbie: added with chain ollama/qwen3:8b > ollama/glm-5:cloud" in detail
        assert "nexus's pin moved: ollama/glm-5.1:cloud -> deepseek/deepseek-v4-flash" in detail
        assert "not the breaker" in card.text and "Fallback chains changed" in card.text
        (record,) = audit_records(watcher, "CHAINS_CHANGED")
        assert record["data"]["writer"] == "not the breaker"
        assert record["data"]["moved"] == {
            "nexus": ["ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash"]}
        # newbie's chain is one fallback deep and on one provider: announced once.
        (lint,) = cards(watcher, "CHAIN_LINT")
        assert "new: newbie: chain" in (lint.alert.detail or "")
        Daemon(watcher).poll_chains()  # nothing changed: nothing said again
        assert len(cards(watcher, "CHAIN_LINT")) == 1
        write_openclaw(gateway, CHAINS)  # put back: the findings clear, once
        Daemon(watcher).poll_chains()
        assert len(cards(watcher, "CHAINS_CHANGED")) == 2
        cleared = cards(watcher, "CHAIN_LINT")[-1]
        assert "cleared: newbie: chain" in (cleared.alert.detail or "")
    finally:
        watcher.intake.outbox.close()


def test_a_breaker_cut_is_named_as_the_breaker_s(tmp_path: Path) -> None:
    gateway = tmp_path / "gw" / "openclaw.json"
    gateway.parent.mkdir()
    gateway.write_text(GATEWAY_JSON)
    watcher = open_watcher(tmp_path, gateway, tmp_path / "state")  # the breaker's state dir
    try:
        code, _, err = run_daemon(tmp_path, gateway, until=lambda: cut_written(gateway))
        assert code == 0, err
        ledger = json.loads((tmp_path / "state" / "ledger.json").read_text())
        assert ledger["written_sha256"], ledger
        Daemon(watcher).poll_chains()
        (card,) = cards(watcher, "CHAINS_CHANGED")
        assert card.alert.extra["writer"] == "failover-breaker"
        assert "fallbacks removed: openai/" in (card.alert.detail or "")
        (record,) = audit_records(watcher, "CHAINS_CHANGED")
        assert record["data"]["writer"] == "failover-breaker"
        # A human touching the cut file afterwards is not the breaker.
        text = gateway.read_text().replace('"maxConcurrent": 4', '"maxConcurrent": 4')
        data = json.loads(text)
        data["agents"]["entries"]["local"]["model"] = "ollama/kimi-k2.5:cloud"
        gateway.write_text(json.dumps(data, indent=2))
        Daemon(watcher).poll_chains()
        assert cards(watcher, "CHAINS_CHANGED")[-1].alert.extra["writer"] == "not the breaker"
    finally:
        watcher.intake.outbox.close()
