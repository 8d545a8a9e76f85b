"""An in-process watcher with Telegram commands on, against the fake Bot API and the
fake model server, all on 127.0.0.1. The watcher's clock is a ``Clock`` the test moves,
so staleness is tested without sleeping; messages are dated with that clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from watcher.audit import log as audit
from watcher.classify.evidence import to_event
from watcher.config import load_settings
from watcher.demo import DEMO_TOKEN, PRIMARY
from watcher.demo import openclaw_config as _openclaw
from watcher.fakes.botapi import FakeBotApi, SentMessage
from watcher.fakes.models import FakeModelServer
from watcher.oversight.poller import TelegramControl
from watcher.parse.lines import parse_line
from watcher.shell.loop import Daemon
from watcher.shell.watcher import AUDIT_FILENAME, Watcher

T = TypeVar("T")
CHAT = 4242
OPERATOR = 42
STRANGER = 666
PAID = "deepseek/deepseek-v4-flash"
FAIL = (
    "[model-fallback/decision] model fallback decision: decision=candidate_failed "
    f"requested={PRIMARY} candidate={PRIMARY} reason=server_error "
    f"next={PAID} detail=503 upstream down"
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def until(predicate: Callable[[], T], timeout: float = 10.0, what: str = "it") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def config_text(root: Path, bot: FakeBotApi, control: str = "") -> str:
    return f"""\
state_dir = "{root / "state"}"
gateway_config = "{root / "openclaw.json"}"
[journal]
source = "file:{root / "log.txt"}"
start_at = "head"
[probes]
enabled = false
timeout_s = 3
[metrics]
enabled = false
[plugin]
required = false
[providers.deepseek]
paid = true
credential = "env:DEMO_DEEPSEEK_KEY"
[alerts]
bot_token = "env:DEMO_BOT_TOKEN"
chat_id = {CHAT}
base_url = "{bot.base_url}"
private_per_second = 100
[control]
enabled = true
allowed_user_ids = [{OPERATOR}]
{control}"""


class Rig:
    def __init__(
        self,
        watcher: Watcher,
        control: TelegramControl,
        bot: FakeBotApi,
        models: FakeModelServer,
        clock: Clock,
    ) -> None:
        self.watcher = watcher
        self.models = models
        self.control = control
        self.bot = bot
        self.clock = clock

    async def send(
        self, text: str, *, user: int = OPERATOR, chat: int = CHAT, age_s: float = 0.0
    ) -> SentMessage:
        """Send ``text`` as ``user`` and return the bot's reply to it."""
        handled = self.control.handled
        message_id = self.bot.push_message(
            text, user_id=user, chat_id=chat, username=f"u{user}", date=self.clock() - age_s
        )
        await until(lambda: self.control.handled > handled, what=f"{text!r} handled")
        replies = await until(
            lambda: [m for m in self.bot.messages if m.reply_to == message_id],
            what=f"a reply to {text!r}",
        )
        return replies[0]

    async def press(self, data: str, *, message_id: int, user: int = OPERATOR) -> None:
        handled = self.control.handled
        self.bot.push_press(data, user_id=user, chat_id=CHAT, message_id=message_id)
        await until(lambda: self.control.handled > handled, what=f"press {data} handled")

    def fail_primary(self) -> list[str]:
        event = to_event(parse_line(FAIL, ts=self.clock()))
        assert event is not None
        return self.watcher.apply([event])

    def audit(self) -> list[dict[str, Any]]:
        path = self.watcher.state_dir / AUDIT_FILENAME
        return audit.tail(path, 10_000) if path.exists() else []

    async def card(self, title: str) -> SentMessage:
        found = await until(
            lambda: [m for m in self.bot.messages if title in m.plain_text], what=title
        )
        return found[-1]


@asynccontextmanager
async def running(root: Path, *, control: str = "") -> AsyncIterator[Rig]:
    """A started watcher (sender + command poller, no journal tail) on loopback fakes."""
    models = FakeModelServer().start_in_thread()
    bot = FakeBotApi(DEMO_TOKEN).start()
    bot.max_poll_s = 0.2
    (root / "openclaw.json").write_text(json.dumps(_openclaw(models)))
    (root / "log.txt").write_text("")
    (root / "watcher.toml").write_text(config_text(root, bot, control))
    env = {"DEMO_BOT_TOKEN": DEMO_TOKEN, "DEMO_DEEPSEEK_KEY": "test-key-0000"}
    clock = Clock()
    watcher = Watcher.open(load_settings(root / "watcher.toml"), clock=clock, environ=env)
    assert watcher.alert_service is not None
    ctl = Daemon(watcher).build_control()
    assert isinstance(ctl, TelegramControl)
    await watcher.alert_service.start()
    await ctl.start()
    rig = Rig(watcher, ctl, bot, models, clock)
    try:
        yield rig
    finally:
        await ctl.stop()
        await watcher.alert_service.stop(grace_s=1.0)
        ctl.close()
        bot.stop()
        models.stop_in_thread()
