"""The sender against a loopback fake Bot API, through the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.alerts.outbox import Outbox
from watcher.alerts.pacing import ChatRateLimit
from watcher.alerts.telegram import REPEAT_NOTE
from watcher.core.transitions import TransitionType
from watcher.fakes.botapi import FakeBotApi, Scripted
from watcher.support.metrics import Metrics

from .conftest import GROUP_CHAT, T0, SenderFactory, alert, drain, intake_for

T = TransitionType


def sent_value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"failover_watcher_alerts_{name}_total", labels) or 0


def send_calls(fake: FakeBotApi) -> list[float]:
    return [c.at for c in fake.calls if c.method == "sendMessage"]


async def test_a_card_arrives_as_html_in_the_configured_chat_and_thread(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory, metrics: Metrics
) -> None:
    intake_for(outbox, metrics).submit(alert(), now=T0)
    sender = make_sender(outbox, chat_id=GROUP_CHAT, thread_id=7)
    await drain(sender, lambda: len(fake.messages) == 1)
    (msg,) = fake.messages
    assert msg.chat_id == GROUP_CHAT and msg.message_thread_id == 7
    assert msg.parse_mode == "HTML"
    assert msg.plain_text.startswith("↪️ Fallback fired\nAgent: orchestrator")
    assert sent_value(metrics, "sent", event="FALLBACK_FIRED") == 1
    assert outbox.counts() == {"sent": 1}
    assert metrics.registry.get_sample_value("failover_watcher_outbox_depth") == 0


async def test_a_429_is_honoured_by_waiting_the_retry_after_it_names(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory, metrics: Metrics
) -> None:
    fake.script(Scripted.retry_after(1))
    outbox.enqueue(alert(), "card", now=T0)
    await drain(make_sender(outbox), lambda: len(fake.messages) == 1)
    first, second = send_calls(fake)
    assert second - first >= 1.0  # the fast test backoff alone would wait < 0.1 s
    assert sent_value(metrics, "failed", event="FALLBACK_FIRED") == 1
    assert [m.text for m in fake.messages] == ["card"]


async def test_a_5xx_is_retried_with_backoff(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory
) -> None:
    fake.script(Scripted.server_error(502), Scripted.server_error(500))
    outbox.enqueue(alert(), "card", now=T0)
    await drain(make_sender(outbox), lambda: len(fake.messages) == 1)
    assert len(send_calls(fake)) == 3
    assert REPEAT_NOTE not in fake.messages[0].text  # an error answer proves no delivery


async def test_a_telegram_outage_delivers_everything_afterwards_in_order_exactly_once(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory, metrics: Metrics
) -> None:
    """The 10-minute outage, scaled: down for 1.5 s against a 0.1 s backoff cap."""
    fake.go_down()
    sender = make_sender(outbox)
    task = asyncio.create_task(sender.run())
    intake = intake_for(outbox, metrics, on_enqueue=sender.notify)
    expected = []
    for n in range(30):
        agent = f"agent-{n % 3}"
        kind = T.FALLBACK_FIRED if (n // 3) % 2 == 0 else T.RECOVERY
        a = alert(kind, agent=agent, ts=T0 + n, detail=f"seq {n}")
        intake.submit(a, now=T0 + n * 61)  # past the dedup window: every card goes out
        expected.append(f"seq {n}")
        await asyncio.sleep(0.05)
    assert fake.messages == []
    assert sent_value(metrics, "failed", event="FALLBACK_FIRED") > 0
    # The producer never waited on Telegram: every card was taken while it was down.
    # (How long a submit takes is bench/latency.py's business, never a test's.)
    assert outbox.depth() == 30
    fake.come_up()
    try:
        async with asyncio.timeout(10):
            while outbox.depth():
                await asyncio.sleep(0.02)
    finally:
        await sender.stop()
        await task
        await sender.api.close()
    got = [line for m in fake.messages for line in m.plain_text.splitlines() if "seq" in line]
    assert got == expected  # all, once each, in order (so in order per agent)
    assert all(REPEAT_NOTE not in m.text for m in fake.messages)  # refused = not delivered


async def test_html_injection_in_a_detail_arrives_escaped(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory, metrics: Metrics
) -> None:
    hostile = '</pre><b>pwned</b><a href="http://evil">x</a> & <script>'
    intake_for(outbox, metrics).submit(alert(detail=hostile, reason="<i>"), now=T0)
    await drain(make_sender(outbox), lambda: outbox.depth() == 0)
    (msg,) = fake.messages  # the fake rejects unescaped HTML with "can't parse entities"
    assert hostile in msg.plain_text and "<i>" in msg.plain_text
    assert "&lt;script&gt;" in msg.text


async def test_permanent_errors_are_dead_lettered_with_a_log_line_and_a_metric(
    fake: FakeBotApi,
    outbox: Outbox,
    make_sender: SenderFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.script(Scripted.cant_parse_entities(), Scripted.bot_blocked(), Scripted.chat_not_found())
    for i in range(4):
        outbox.enqueue(alert(agent=f"a{i}"), f"card {i}", now=T0)
    with caplog.at_level(logging.ERROR, logger="watcher.alerts.telegram"):
        await drain(make_sender(outbox), lambda: outbox.depth() == 0)
    assert [m.text for m in fake.messages] == ["card 3"]
    dead = outbox.cards("dead")
    errors = [(c.last_error or "").lower() for c in dead]
    assert len(errors) == 3
    assert errors[0].startswith("badrequest: can't parse entities")
    assert errors[1].startswith("forbidden") and "bot was blocked" in errors[1]
    assert errors[2] == "badrequest: chat not found"
    assert sent_value(metrics, "dead_lettered", event="FALLBACK_FIRED") == 3
    assert len([r for r in caplog.records if "dead-lettered" in r.getMessage()]) == 3


async def test_a_migrated_group_is_followed_and_the_new_chat_id_is_remembered(
    fake: FakeBotApi, outbox_path: Path, make_sender: SenderFactory
) -> None:
    new_chat = -1009999999999
    fake.migrate_chat(GROUP_CHAT, new_chat)
    box = Outbox(outbox_path)
    box.enqueue(alert(), "one", now=T0)
    await drain(make_sender(box, chat_id=GROUP_CHAT), lambda: box.depth() == 0)
    box.close()
    box = Outbox(outbox_path)  # restart: the migration was persisted
    box.enqueue(alert(), "two", now=T0)
    await drain(make_sender(box, chat_id=GROUP_CHAT), lambda: box.depth() == 0)
    box.close()
    assert [(m.chat_id, m.text) for m in fake.messages] == [(new_chat, "one"), (new_chat, "two")]
    asked_old = [c for c in fake.calls if c.params.get("chat_id") == str(GROUP_CHAT)]
    assert len(asked_old) == 1  # only the first attempt, before the migration was known


async def test_a_restart_mid_queue_sends_nothing_twice(
    fake: FakeBotApi, outbox_path: Path, make_sender: SenderFactory
) -> None:
    box = Outbox(outbox_path)
    for i in range(10):
        box.enqueue(alert(agent=f"a{i % 2}"), f"card {i}", now=T0)
    await drain(make_sender(box), lambda: len(fake.messages) >= 4)
    box.close()
    box = Outbox(outbox_path)
    await drain(make_sender(box), lambda: box.depth() == 0)
    box.close()
    texts = [m.text for m in fake.messages]
    assert texts == [f"card {i}" for i in range(10)]


async def test_a_send_cut_short_by_a_crash_is_resent_labelled_as_a_possible_repeat(
    fake: FakeBotApi, outbox_path: Path, make_sender: SenderFactory
) -> None:
    """Telegram may have the card (we cannot ask), so resend it and say so."""
    fake.script(Scripted.hang(30, deliver=True))
    box = Outbox(outbox_path)
    box.enqueue(alert(T.HARD_FAILURE), "critical", now=T0)
    sender = make_sender(box, read_timeout=30)
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(5):
        while not fake.messages:
            await asyncio.sleep(0.01)
    await sender.stop(grace_s=0.1)  # the call is in flight: cancelled, row stays 'sending'
    assert task.cancelled()
    await sender.api.close()
    box.close()
    box = Outbox(outbox_path)
    await drain(make_sender(box), lambda: box.depth() == 0)
    box.close()
    assert [m.text for m in fake.messages] == ["critical", "critical\n" + REPEAT_NOTE]


async def test_a_read_timeout_is_retried_and_labelled_as_a_possible_repeat(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory
) -> None:
    fake.script(Scripted.hang(2, deliver=True))  # client read timeout is 0.5 s
    outbox.enqueue(alert(), "card", now=T0)
    await drain(make_sender(outbox), lambda: outbox.depth() == 0)
    assert [m.text for m in fake.messages] == ["card", "card\n" + REPEAT_NOTE]


async def test_a_full_outbox_tells_the_operator_how_many_cards_it_dropped(
    fake: FakeBotApi, outbox_path: Path, make_sender: SenderFactory
) -> None:
    box = Outbox(outbox_path, limit=10)
    for i in range(12):
        box.enqueue(alert(agent=f"a{i}"), f"card {i}", now=T0)
    await drain(make_sender(box), lambda: box.depth() == 0)
    texts = [m.plain_text for m in fake.messages]
    assert texts[0] == "card 2\n⚠️ 2 older card(s) were dropped unsent: outbox full"
    assert texts[1:] == [f"card {i}" for i in range(3, 12)]
    assert box.dropped_unreported() == 0
    box.close()


async def test_cards_to_a_private_chat_are_paced(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory
) -> None:
    for i in range(6):
        outbox.enqueue(alert(agent=f"a{i}"), f"card {i}", now=T0)
    sender = make_sender(outbox, rate_limit=ChatRateLimit(private_per_second=10))
    await drain(sender, lambda: outbox.depth() == 0)
    times = send_calls(fake)
    # Tokens are taken 0.1 s apart; arrivals jitter by the loopback round trip (the
    # first one also pays for the TCP connect), hence the margin.
    assert len(times) == 6 and times[-1] - times[0] >= 0.4


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Every record from every logger at DEBUG, formatted with tracebacks."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_the_bot_token_appears_in_no_log_output(
    fake: FakeBotApi, outbox: Outbox, make_sender: SenderFactory, all_logs: io.StringIO
) -> None:
    fake.script(
        Scripted.retry_after(1),
        Scripted.server_error(502),
        Scripted.hang(2),
        Scripted.bot_blocked(),
    )
    for i in range(5):
        outbox.enqueue(alert(agent=f"a{i}"), f"card {i}", now=T0)
    sender = make_sender(outbox)
    logging.getLogger("test").debug("the sender is %r, its bot %r", sender, sender.api.bot)  # type: ignore[attr-defined]
    fake.go_down()
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(0.3)
    fake.come_up()
    async with asyncio.timeout(10):
        while outbox.depth():
            await asyncio.sleep(0.02)
    await sender.stop()
    await task
    await sender.api.close()
    logged = all_logs.getvalue()
    secret_part = fake.token.split(":", 1)[1]
    assert "/bot[redacted]/sendMessage" in logged  # httpx's request lines were captured
    assert "Traceback" in logged or "NetworkError" in logged
    assert fake.token not in logged and secret_part not in logged
