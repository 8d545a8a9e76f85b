"""The real daemon as a subprocess: a hold given from Telegram survives a restart, and
the restarted daemon neither loses it nor runs the command a second time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.audit import log as audit
from watcher.demo import watcher_config as _config
from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.journal import journal_remote_binary

pytestmark = pytest.mark.skipif(
    journal_remote_binary() is None, reason="systemd-journal-remote is not installed"
)

OPERATOR = 42
CHAT = 4242  # the demo config's alerts chat
PAID = "deepseek/deepseek-v4-flash"


def _with_control(root: Path, journal: str, bot: FakeBotApi) -> str:
    return _config(root, journal, bot) + (
        f"\n[control]\nenabled = true\nallowed_user_ids = [{OPERATOR}]\n"
    )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[DaemonRig]:
    r = DaemonRig(tmp_path, config_text=_with_control)
    yield r
    r.close()


def _replies(rig: DaemonRig, message_id: int) -> list[str]:
    return [m.text for m in rig.bot.messages if m.reply_to == message_id]


def test_a_hold_from_telegram_survives_a_daemon_restart_and_is_not_run_twice(
    rig: DaemonRig,
) -> None:
    rig.start()
    hold = rig.bot.push_message(
        f"/hold nexus {PAID} 2h restart drill", user_id=OPERATOR, chat_id=CHAT, date=time.time()
    )
    (reply,) = wait_until(lambda: _replies(rig, hold), what="the hold reply")
    assert reply.startswith("✅") and f"held nexus on {PAID}" in reply
    pin = wait_until(lambda: rig.pins()["agents"]["nexus"].get("hold"), what="hold in pin file")
    assert pin["model"] == PAID and pin["by"] == f"telegram:{OPERATOR}"
    assert rig.stop() == 0

    rig.start()
    status = rig.bot.push_message("/status", user_id=OPERATOR, chat_id=CHAT, date=time.time())
    (shown,) = wait_until(lambda: _replies(rig, status), what="the /status reply")
    assert f"held by telegram:{OPERATOR}" in shown
    assert rig.pins()["agents"]["nexus"]["hold"] == pin
    assert rig.pins()["agents"]["nexus"]["current_serving"] == PAID
    held = rig.status()["agents"]["nexus"]["hold"]
    assert held["by"] == f"telegram:{OPERATOR}" and held["note"] == "restart drill"
    assert rig.stop() == 0

    # The /hold update was handled once: one reply, one audited override.
    assert len(_replies(rig, hold)) == 1
    records = audit.tail(rig.state / "audit.jsonl", 10_000)
    holds = [r for r in records if r["type"] == "OPERATOR_OVERRIDE"]
    assert len(holds) == 1 and holds[0]["data"]["actor"] == f"telegram:{OPERATOR}"
