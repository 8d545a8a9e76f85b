"""Write discipline for openclaw.json: validate, back up, compare-and-set, never clobber."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.breaker.conftest import GATEWAY_JSON
from watcher.breaker.config_writer import ConcurrentEditError, ConfigWriteError, ConfigWriter
from watcher.breaker.cut import Cut, Edited, cut_provider, restore_cuts
from watcher.gateway.chains import parse_gateway_config


def cut_openai(text: str) -> tuple[Edited, Cut]:
    return cut_provider(text, "openai")


def test_a_trip_is_written_atomically_with_a_backup_and_the_same_mode(gateway: Path) -> None:
    writer = ConfigWriter(gateway, clock=lambda: 1779260000.0)
    outcome = writer.apply(cut_openai)
    assert outcome.written and outcome.attempts == 1
    assert outcome.backup is not None
    assert outcome.backup.name == "openclaw.json.breaker-20260520T065320.000000Z.bak"
    assert outcome.backup.read_text() == GATEWAY_JSON
    assert stat.S_IMODE(gateway.stat().st_mode) == 0o600
    assert stat.S_IMODE(outcome.backup.stat().st_mode) == 0o600
    assert "openai" not in "".join(parse_gateway_config(gateway.read_text()).chains["ops"])
    assert sorted(p.name for p in gateway.parent.iterdir()) == [
        "openclaw.json", outcome.backup.name]  # no temp file left


def test_a_concurrent_operator_edit_during_a_trip_is_detected_and_kept(gateway: Path) -> None:
    edits = []

    def operator_saves() -> None:  # the operator's editor writes right before our rename
        if not edits:
            text = gateway.read_text().replace('"thinking": "low"', '"thinking": "high"')
            gateway.write_text(text)
            edits.append(text)

    writer = ConfigWriter(gateway, before_replace=operator_saves)
    outcome = writer.apply(cut_openai)
    assert outcome.written and outcome.attempts == 2
    final = gateway.read_text()
    assert '"thinking": "high"' in final  # the operator's edit survived
    assert "openai/gpt-5.5" not in final.split('"models"')[0]  # and the cut is there too
    assert len(writer.backups()) == 1
    assert '"thinking": "high"' in writer.backups()[0].read_text()


def test_an_operator_who_keeps_editing_wins_and_the_breaker_gives_up(gateway: Path) -> None:
    n = [0]

    def operator_saves() -> None:
        n[0] += 1
        gateway.write_text(GATEWAY_JSON.replace("18789", str(20000 + n[0])))

    writer = ConfigWriter(gateway, cas_retries=2, before_replace=operator_saves)
    with pytest.raises(ConcurrentEditError, match="3 times"):
        writer.apply(cut_openai)
    assert gateway.read_text() == GATEWAY_JSON.replace("18789", "20003")  # never overwritten
    assert sorted(p.name for p in gateway.parent.iterdir()) == ["openclaw.json"]


@pytest.mark.parametrize("content", [
    b'{"agents": {"entries": {"x": {"model": 42}}}}',  # the chain reader rejects it
    b'{"agents": {',  # not JSON5
    b'\xff\xfe{"agents": {}}',  # not UTF-8
])
def test_an_invalid_or_unreadable_config_is_never_written(gateway: Path, content: bytes) -> None:
    gateway.write_bytes(content)
    with pytest.raises(ConfigWriteError, match=r"nothing was written|not UTF-8"):
        ConfigWriter(gateway).apply(cut_openai)
    assert gateway.read_bytes() == content
    assert sorted(p.name for p in gateway.parent.iterdir()) == ["openclaw.json"]


def test_a_missing_config_is_reported_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigWriteError, match="cannot read"):
        ConfigWriter(tmp_path / "openclaw.json").apply(cut_openai)
    assert list(tmp_path.iterdir()) == []


def test_an_edit_that_would_break_a_chain_is_refused(gateway: Path) -> None:
    def breaks_it(text: str) -> tuple[Edited, None]:  # a buggy edit that skips validation
        return Edited(text.replace('"model": "ollama/qwen3:8b"', '"model": ""'), True, True), None

    with pytest.raises(ConfigWriteError, match="invalid config"):
        ConfigWriter(gateway).apply(breaks_it)
    assert gateway.read_text() == GATEWAY_JSON


def test_dry_run_returns_the_diff_and_writes_nothing(gateway: Path) -> None:
    before = os.stat(gateway)
    outcome = ConfigWriter(gateway).apply(cut_openai, dry_run=True)
    assert not outcome.written
    assert '-          "openai/gpt-5.2",' in outcome.diff
    assert '+        "model": "ollama/qwen3:8b"' in outcome.diff
    assert gateway.read_text() == GATEWAY_JSON
    assert os.stat(gateway).st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in gateway.parent.iterdir()) == ["openclaw.json"]


def test_only_the_newest_backups_are_kept(gateway: Path) -> None:
    clock = iter(float(1779260000 + i) for i in range(100))
    writer = ConfigWriter(gateway, backups_keep=3, clock=lambda: next(clock))
    cuts = []
    for _ in range(3):
        cuts.append(writer.apply(cut_openai).info)
        writer.apply(lambda text, c=cuts: restore_cuts(text, c[-1:]))
    assert gateway.read_text() == GATEWAY_JSON
    names = [p.name for p in writer.backups()]
    assert len(names) == 3 and names == sorted(names)
    assert names[-1] == "openclaw.json.breaker-20260520T065325.000000Z.bak"


def test_a_write_that_cannot_keep_comments_says_so_in_the_backup_name(gateway: Path) -> None:
    def plain(text: str) -> tuple[Edited, None]:
        return Edited(text.replace("18789", "18790"), preserves_comments=False, changed=True), None

    outcome = ConfigWriter(gateway, clock=lambda: 1779260000.0).apply(plain)
    assert outcome.backup is not None
    assert outcome.backup.name.endswith(".comments-dropped.bak")
