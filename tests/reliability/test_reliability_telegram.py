"""Telegram down, then back: every card once, in order per agent, the tail unblocked.

The long run is by hand (``python -m tests.reliability.soak_telegram --down-seconds
600``); CI runs the same harness with a 15 s outage (connections refused), a 5 s one
where every send hangs, and a hung send that did arrive.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability.soak_telegram import (
    AGENTS,
    check_delivery,
    config_for,
    fail_line,
    outbox_rows,
    run_outage,
    success_line,
)
from tests.rigs.daemon_rig import DaemonRig, wait_until
from watcher.alerts.telegram import REPEAT_NOTE
from watcher.fakes.botapi import Scripted
from watcher.fakes.journal import journal_remote_binary

pytestmark = pytest.mark.skipif(
    journal_remote_binary() is None, reason="systemd-journal-remote is not installed"
)


def test_cards_from_a_telegram_outage_arrive_once_and_in_order_and_the_pins_keep_moving(
    tmp_path: Path,
) -> None:
    seen = run_outage(tmp_path, down_s=15.0, up_cycles=2, backoff_max_s=2.0, per_second=60.0)
    print(seen.summary())
    # The tail kept tracking the journal: every move during the outage reached the pin
    # file (run_outage raises otherwise), and there were many of them.
    assert len(seen.pin_latency_down_s) >= 2 * len(AGENTS)
    check_delivery(seen)


def test_a_telegram_that_accepts_but_never_answers_delays_neither_the_pins_nor_the_order(
    tmp_path: Path,
) -> None:
    """Slow rather than down: every send times out. Only the card at the head was ever
    sent, so only it is labelled a possible repeat, and it still arrives once."""
    seen = run_outage(tmp_path, down_s=5.0, mode="hang", up_cycles=1, backoff_max_s=1.0,
                      per_second=60.0)
    print(seen.summary())
    check_delivery(seen)
    assert sum(1 for r in seen.rows if r["ambiguous"]) == 1


def test_a_hung_send_is_the_only_card_marked_as_a_possible_repeat(tmp_path: Path) -> None:
    """A send that hangs past the read timeout may have reached Telegram: its card is
    resent once, labelled; the cards after it are neither repeated nor labelled."""
    rig = DaemonRig(tmp_path, config_text=config_for(backoff_max_s=1.0, per_second=20.0))
    try:
        # The first send hangs past the read timeout although the message arrived; its
        # retry hangs too, without arriving; then Telegram answers normally.
        rig.bot.script(Scripted.hang(3.0, deliver=True), Scripted.hang(3.0))
        rig.start()
        agent = AGENTS[0]
        rig.journal.append(fail_line(agent, 1))
        rig.journal.flush()
        wait_until(lambda: rig.pins()["agents"][agent]["in_fallback"], what="fallback")
        rig.journal.append(success_line(agent))
        rig.journal.flush()
        wait_until(lambda: not rig.pins()["agents"][agent]["in_fallback"], what="failback")
        wait_until(lambda: all(r["state"] == "sent" for r in outbox_rows(rig.state))
                   and len(outbox_rows(rig.state)) == 2, timeout=30, what="both cards sent")
        time.sleep(0.5)
        messages = rig.bot.messages
        rows = outbox_rows(rig.state)
        assert rig.stop() == 0
    finally:
        rig.close()
    fallback_card, recovery_card = rows
    assert fallback_card["event"] == "FALLBACK_FIRED" and recovery_card["event"] == "RECOVERY"
    assert fallback_card["ambiguous"] and fallback_card["attempts"] >= 2
    assert not recovery_card["ambiguous"]
    # Telegram shows the hung card twice (the resend labelled), the recovery once.
    texts = [m.text for m in messages]
    assert texts == [
        fallback_card["text"],
        fallback_card["text"] + "\n" + REPEAT_NOTE,
        recovery_card["text"],
    ]
