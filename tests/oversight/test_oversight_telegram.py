"""Operator commands and card buttons through real python-telegram-bot against the fake
Bot API: who may act, what is refused, what is audited, what changes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from watcher.demo import CHAINS, DEMO_TOKEN, PRIMARY
from watcher.fakes.botapi import SentMessage
from watcher.fakes.models import Reply
from watcher.status import collect, render_text

from .rig import CHAT, OPERATOR, PAID, STRANGER, Rig, running, until


def _buttons(message: SentMessage) -> dict[str, str]:
    (row,) = message.reply_markup["inline_keyboard"]
    return {b["text"]: b["callback_data"] for b in row}


def _types(rig: Rig) -> list[str]:
    return [r["type"] for r in rig.audit()]


async def test_an_allowed_user_holds_and_releases_and_both_are_audited_and_announced(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        reply = await rig.send(f"/hold nexus {PAID} 2h trying the paid one")
        assert reply.text.startswith("✅")
        assert f"held nexus on {PAID}" in reply.text
        agent = rig.watcher.state.agents["nexus"]
        assert agent.serving == PAID and agent.hold is not None
        assert agent.hold.by == f"telegram:{OPERATOR} @u{OPERATOR}"
        assert agent.hold.until == rig.clock() + 7200
        pins = rig.watcher.pins.read().pins
        assert pins.agents["nexus"].current_serving == PAID
        assert pins.agents["nexus"].hold is not None

        reply = await rig.send("/release nexus")
        assert reply.text.startswith("✅") and "released nexus" in reply.text
        assert rig.watcher.state.agents["nexus"].serving == PRIMARY
        assert rig.watcher.pins.read().pins.agents["nexus"].hold is None

        overrides = [r for r in rig.audit() if r["type"] == "OPERATOR_OVERRIDE"]
        assert [r["data"]["actor"] for r in overrides] == [f"telegram:{OPERATOR} @u{OPERATOR}"] * 2
        cards = await until(
            lambda: [m for m in rig.bot.messages if "Operator override" in m.plain_text][1:],
            what="two override cards",
        )
        assert "action: release" in cards[0].plain_text


async def test_a_stranger_is_refused_and_the_attempt_is_audited_with_their_user_id(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        reply = await rig.send(f"/hold nexus {PAID}", user=STRANGER)
        assert reply.text.startswith("⛔ Not allowed")
        assert str(STRANGER) in reply.text
        # An allowed user in a chat that is not allowed is refused too.
        reply = await rig.send("/release nexus", chat=-1001)
        assert "chat -1001 is not an allowed chat" in reply.text
        # And a stranger's button press.
        rig.fail_primary()
        card = await rig.card("Fallback fired")
        await rig.press(_buttons(card)["Fail back now"], message_id=card.message_id, user=STRANGER)
        answer = rig.bot.answers()[-1]
        assert "Not allowed" in answer["text"]

        assert rig.watcher.state.agents["nexus"].hold is None
        refused = [r["data"] for r in rig.audit() if r["type"] == "ACCESS_REFUSED"]
        assert [r["actor"] for r in refused] == [
            f"telegram:{STRANGER} @u{STRANGER}",
            f"telegram:{OPERATOR} @u{OPERATOR}",
            f"telegram:{STRANGER}",
        ]
        assert refused[0]["why"] == f"user {STRANGER} is not on the allowlist"
        assert refused[1]["chat"] == "-1001"
        assert "OPERATOR_OVERRIDE" not in _types(rig)


async def test_a_card_button_asks_for_confirmation_and_only_confirm_acts(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        rig.fail_primary()
        card = await rig.card("Fallback fired")
        buttons = _buttons(card)
        assert list(buttons) == ["Hold on fallback 1 h", "Fail back now", "Mute 30 min"]
        assert all(len(data.encode()) <= 64 for data in buttons.values())
        assert "Hold on fallback" not in card.plain_text  # buttons are markup, not text

        await rig.press(buttons["Hold on fallback 1 h"], message_id=card.message_id)
        ask = await rig.card("Confirm: hold")
        (row,) = ask.reply_markup["inline_keyboard"]
        confirm, cancel = row[0]["callback_data"], row[1]["callback_data"]
        assert [b["text"] for b in row] == ["Confirm", "Cancel"]
        assert rig.watcher.state.agents["nexus"].hold is None  # asking changed nothing

        await rig.press(cancel, message_id=ask.message_id)
        first = ask
        assert rig.watcher.state.agents["nexus"].hold is None
        await rig.press(confirm, message_id=ask.message_id)  # cancelled: never acts
        assert rig.watcher.state.agents["nexus"].hold is None

        await rig.press(buttons["Hold on fallback 1 h"], message_id=card.message_id)
        (second,) = await until(
            lambda: [
                m
                for m in rig.bot.messages
                if m.text.startswith("Confirm: hold") and m.message_id != first.message_id
            ],
            what="second confirmation",
        )
        confirm = second.reply_markup["inline_keyboard"][0][0]["callback_data"]
        await rig.press(confirm, message_id=second.message_id)
        for agent in ("nexus", "george"):  # the card named both agents
            held = rig.watcher.state.agents[agent]
            assert held.hold is not None and held.hold.until == rig.clock() + 3600
            assert held.serving == CHAINS[agent][1]
        edited = next(m for m in rig.bot.messages if m.message_id == second.message_id)
        assert "✅" in edited.text
        await rig.press(confirm, message_id=second.message_id)  # a second press: no second act
        assert rig.bot.answers()[-1]["text"] == "Already done."
        assert _types(rig).count("OPERATOR_OVERRIDE") == 2


async def test_a_stale_button_is_refused_audited_and_changes_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, control="button_ttl_s = 1800\n") as rig:
        rig.fail_primary()
        card = await rig.card("Fallback fired")
        rig.clock.advance(1801)
        await rig.press(_buttons(card)["Hold on fallback 1 h"], message_id=card.message_id)
        answer = rig.bot.answers()[-1]
        assert answer["text"].startswith("⌛ Refused: stale button (30 min old, limit 30 min)")
        assert not [m for m in rig.bot.messages if m.text.startswith("Confirm")]
        assert rig.watcher.state.agents["nexus"].hold is None
        (refused,) = [r["data"] for r in rig.audit() if r["type"] == "ACCESS_REFUSED"]
        assert refused["actor"] == f"telegram:{OPERATOR}" and "stale button" in refused["why"]

        # A command read long after it was sent is stale too.
        reply = await rig.send(f"/hold nexus {PAID}", age_s=600)
        assert reply.text.startswith("⌛ Not acting on a stale command")
        assert rig.watcher.state.agents["nexus"].hold is None


async def test_bad_arguments_are_answered_clearly_and_change_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        before = rig.watcher.state
        cases = {
            f"/hold zeus {PAID}": "unknown agent 'zeus' (known: george, hermes, nexus)",
            "/hold nexus openai/gpt-9": "'openai/gpt-9' is not in nexus's chain",
            f"/hold nexus {PAID} soon": "bad hold duration 'soon': use e.g. 90s, 15m, 2h, 1d",
            f"/hold nexus {PAID} 30d": "bad hold duration '30d': at most 7d is allowed here",
            "/hold nexus": "missing argument: /hold <agent> <model> [duration|-] [note]",
            "/release": "missing argument: /release <agent>",
            "/mute nonsense 1h": "bad event key 'nonsense'",
            "/mute HARD_FAILURE|nexus|-|-|- 1h": "HARD_FAILURE cards are never suppressed",
            "/frobnicate": "unknown command /frobnicate",
        }
        for text, expected in cases.items():
            reply = await rig.send(text)
            assert reply.text.startswith("⚠️"), reply.text
            assert expected in reply.text, reply.text
            assert reply.text.endswith("Nothing changed.")
        assert rig.watcher.state is before
        assert "OPERATOR_OVERRIDE" not in _types(rig)
        assert "OPERATOR_REFUSED" not in _types(rig)


async def test_a_mute_is_counted_as_suppressed_and_shown_in_status(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        rig.fail_primary()
        card = await rig.card("Fallback fired")
        key = rig.watcher.intake.dedup.recent_keys(rig.clock())[0][0]
        assert key.startswith("FALLBACK_FIRED|george,nexus|")
        status = await rig.send("/status")
        assert key in status.plain_text  # /status lists recent keys to mute

        reply = await rig.send(f"/mute {key} 45m")
        assert reply.text.startswith("✅") and f"muted {key}" in reply.text
        (muted,) = [r["data"] for r in rig.audit() if r["type"] == "CARDS_MUTED"]
        assert muted["key"] == key and muted["actor"] == f"telegram:{OPERATOR} @u{OPERATOR}"

        # The same transition again, past the dedup window: muted, counted, not sent.
        (fired,) = rig.watcher.intake.outbox.cards()[:1]
        assert fired.alert.dedup_key == key
        rig.clock.advance(120)
        rig.watcher.intake.submit(replace(fired.alert, ts=rig.clock()), now=rig.clock())
        data = collect(rig.watcher.state_dir, rig.clock())
        assert data["alerts"]["suppressed_last_hour"][key]["by_reason"] == {"muted": 1}
        assert key in data["alerts"]["muted"]
        assert f"  {key}  until " in render_text(data)
        status = await rig.send("/status")
        assert "Muted (still counted)" in status.plain_text and key in status.plain_text
        assert "muted 1" in status.plain_text
        cards = [m for m in rig.bot.messages if "Fallback fired" in m.plain_text]
        assert cards == [card]


async def test_failback_with_a_failing_probe_says_so_and_changes_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        rig.models.script(PRIMARY.partition("/")[2], probe=Reply.failing(503))
        rig.fail_primary()
        assert rig.watcher.state.agents["nexus"].serving == PAID
        reply = await rig.send("/failback nexus")
        assert reply.text.startswith(f"❌ probe of {PRIMARY} failed (overloaded: HTTP 503")
        assert f"nexus stays on {PAID}. Nothing changed." in reply.text
        assert rig.watcher.state.agents["nexus"].serving == PAID
        assert "OPERATOR_REFUSED" in _types(rig)

        rig.models.script(PRIMARY.partition("/")[2], probe=Reply.ok())
        reply = await rig.send("/failback nexus")
        assert reply.text.startswith("✅") and "failed nexus back" in reply.text
        assert rig.watcher.state.agents["nexus"].serving == PRIMARY


async def test_state_changing_commands_are_rate_limited_per_user(tmp_path: Path) -> None:
    async with running(tmp_path, control="rate_per_minute = 1\nrate_burst = 2\n") as rig:
        assert (await rig.send(f"/hold nexus {PAID}")).text.startswith("✅")
        assert (await rig.send("/release nexus")).text.startswith("✅")
        limited = await rig.send(f"/hold nexus {PAID}")
        assert limited.text.startswith("🐢 Too many actions; try again in 60 s")
        assert rig.watcher.state.agents["nexus"].hold is None
        assert (await rig.send("/status")).text  # reading is never rate limited
        rig.clock.advance(61)
        assert (await rig.send(f"/hold nexus {PAID}")).text.startswith("✅")
        assert CHAT and OPERATOR


async def test_telegram_down_never_blocks_decisions_and_commands_resume_when_it_is_back(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        rig.bot.go_down()
        await asyncio.sleep(0.3)  # the poller meets a refused connection and backs off
        assert "FALLBACK_FIRED" in rig.fail_primary()[0]  # decided and queued meanwhile
        assert rig.control._task is not None and not rig.control._task.done()
        rig.bot.come_up()
        reply = await rig.send("/release nexus")
        assert "nexus has no hold to release" in reply.text


async def test_the_bot_token_never_reaches_a_log_record_or_a_reply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(tmp_path) as rig:
        await rig.send("/status", user=STRANGER)
        await rig.send("/status")
        rig.bot.go_down()
        await asyncio.sleep(0.3)
        rig.bot.come_up()
        await rig.send("/help")
        texts = [m.text for m in rig.bot.messages]
    assert "getUpdates" in caplog.text  # PTB logged its requests at DEBUG
    assert DEMO_TOKEN not in caplog.text
    assert all(DEMO_TOKEN not in t for t in texts)
