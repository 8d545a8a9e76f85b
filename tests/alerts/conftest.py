"""Fixtures for the alert pipeline: a loopback fake Bot API, an outbox, fast senders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import Outbox
from watcher.alerts.pacing import Backoff, ChatRateLimit
from watcher.alerts.secret import Secret
from watcher.alerts.telegram import PtbBotApi, TelegramSender, build_bot
from watcher.core.transitions import Alert, TransitionType
from watcher.fakes.botapi import FakeBotApi
from watcher.support.metrics import Metrics

T0 = 1_779_280_000.0  # 2026-05-20 12:26:40 UTC
UTC = ZoneInfo("UTC")
PRIVATE_CHAT = 4242
GROUP_CHAT = -1001234567890


@pytest.fixture
def fake() -> Iterator[FakeBotApi]:
    with FakeBotApi() as server:
        yield server


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
def outbox(outbox_path: Path, metrics: Metrics) -> Iterator[Outbox]:
    box = Outbox(outbox_path, limit=1000, metrics=metrics.alerts)
    yield box
    box.close()


def alert(
    type_: TransitionType = TransitionType.FALLBACK_FIRED,
    agent: str = "orchestrator",
    ts: float = T0,
    **fields: object,
) -> Alert:
    defaults: dict[str, object] = {
        "from_model": "ollama/deepseek-v4-flash:cloud",
        "to_model": "ollama/qwen3:8b",
        "failure_class": "throttle",
        "reason": "rate_limit",
    }
    defaults.update(fields)
    return Alert(type=type_, ts=ts, agents=(agent,) if agent else (), **defaults)  # type: ignore[arg-type]


SenderFactory = Callable[..., TelegramSender]


@pytest.fixture
def make_sender(fake: FakeBotApi, metrics: Metrics) -> SenderFactory:
    """Senders on the real PTB against the fake, paced and backed off fast.

    ``drain`` closes a sender's Bot when it is done with it.
    """

    def factory(
        box: Outbox, *, chat_id: int = PRIVATE_CHAT, read_timeout: float = 0.5, **kwargs: object
    ) -> TelegramSender:
        bot = build_bot(Secret(fake.token), base_url=fake.base_url, read_timeout=read_timeout)
        api = PtbBotApi(bot)
        options: dict[str, object] = {
            "rate_limit": ChatRateLimit(private_per_second=1000, group_per_minute=60_000),
            "backoff": Backoff(base_s=0.02, max_s=0.1),
            "metrics": metrics.alerts,
            "idle_poll_s": 0.05,
        }
        options.update(kwargs)
        return TelegramSender(box, api, chat_id=chat_id, **options)  # type: ignore[arg-type]

    return factory


async def drain(sender: TelegramSender, until: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the sender as a task until ``until()`` holds, then stop it."""
    task = asyncio.create_task(sender.run())
    try:
        async with asyncio.timeout(timeout):
            while not until():
                await asyncio.sleep(0.01)
    finally:
        await sender.stop(grace_s=2.0)
        await task
        await sender.api.close()


def intake_for(box: Outbox, metrics: Metrics, **kwargs: object) -> AlertIntake:
    return AlertIntake(box, tz=UTC, metrics=metrics.alerts, **kwargs)  # type: ignore[arg-type]
