"""The README's first command: the demo runs end to end on loopback fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.demo import run_demo


def test_the_demo_shows_the_incident_its_cards_and_the_telegram_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The demo's own length: its timeline (throttle at 3 s, cooldown, probes, recovery)
    # needs it on a loaded machine. Recovery timing is not asserted: it is the
    # daemon tests' business, and a busy CI box may stretch it past the end.
    assert run_demo(seconds=20.0, keep=tmp_path) == 0
    out = capsys.readouterr().out
    print(out)  # shown by pytest when an assertion below fails
    assert "naive" in out and "default" in out  # part 1: the comparison table
    assert "Fallback fired" in out
    assert "[buttons: Hold on fallback 1 h, Fail back now, Mute 30 min]" in out
    assert "Replies to Telegram commands (3)" in out
    assert "failover-watcher status at" in out  # the operator's /status
    assert "Not allowed: user 666013" in out  # the stranger, refused
    assert "held hermes on ollama/glm-5:cloud" in out
    audit = (tmp_path / "state" / "audit.jsonl").read_text()
    assert "ACCESS_REFUSED" in audit and "telegram:777001" in audit
    assert "123456:DEMO" not in (tmp_path / "daemon.log").read_text()
