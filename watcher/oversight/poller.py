"""The Telegram side: long-poll ``getUpdates``, check who asks, answer, act.

One asyncio task in the daemon's loop (started and stopped by ``Watcher.run``). It
never blocks the journal tail: the poll is an awaited HTTP call with explicit
timeouts, Telegram errors back off, and acting is a call to ``Watcher.apply`` on the
same loop as the tail, so there is still one writer of state.

Each update is handled at most once: its ``update_id`` is stored (``ButtonStore``)
before it is acted on, so a restart never runs a command twice (a crash in between
loses that one command; the operator sees no reply and can send it again).

Order of checks for anything that changes state: allowlist (user *and* chat; strangers
are refused and audited), argument validation, staleness (commands older than
``command_ttl_s``, buttons older than ``button_ttl_s``, confirmations older than
``confirm_ttl_s``; audited), the per-user rate limit, then the core decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import telegram
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from watcher.alerts.config import AlertsConfig, resolve_token
from watcher.alerts.outbox import Card
from watcher.alerts.secret import protect
from watcher.alerts.telegram import Markup  # also opts PTB into timedelta behaviour
from watcher.oversight.access import Allowlist, RateLimit, is_stale
from watcher.oversight.acts import Acts, Steerable
from watcher.oversight.buttons import FILENAME, ButtonStore
from watcher.oversight.commands import (
    HELP,
    CommandError,
    HelpCommand,
    StatusCommand,
    command_name,
    parse_command,
)
from watcher.oversight.config import ControlConfig
from watcher.oversight.status_view import render_status

log = logging.getLogger("watcher.oversight")


def actor_of(user: telegram.User | None) -> str:
    """``telegram:<id>`` (plus ``@username`` when there is one): the audit's actor."""
    if user is None:
        return "telegram:unknown"
    name = f" @{user.username}" if user.username else ""
    return f"telegram:{user.id}{name}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def build_control_bot(
    alerts: AlertsConfig, environ: dict[str, str] | None = None
) -> tuple[telegram.Bot, list[HTTPXRequest]]:
    """A bot on the alerts token with its own connections (the long poll never takes
    the sender's). The token is registered for redaction before any request exists."""
    token = resolve_token(alerts.bot_token, environ=environ)
    protect(token)
    requests = [
        HTTPXRequest(
            connection_pool_size=2,
            connect_timeout=alerts.connect_timeout_s,
            read_timeout=alerts.read_timeout_s,
            write_timeout=alerts.read_timeout_s,
            pool_timeout=1.0,
        ),
        HTTPXRequest(  # getUpdates: PTB adds the long-poll timeout to this read timeout
            connection_pool_size=1,
            connect_timeout=alerts.connect_timeout_s,
            read_timeout=alerts.read_timeout_s,
            write_timeout=alerts.read_timeout_s,
            pool_timeout=1.0,
        ),
    ]
    bot = telegram.Bot(
        token.reveal(),
        base_url=alerts.base_url,
        request=requests[0],
        get_updates_request=requests[1],
    )
    return bot, requests


class TelegramControl:
    """Operator commands and card buttons for one watcher."""

    def __init__(
        self,
        config: ControlConfig,
        *,
        chat_ids: frozenset[int],
        watcher: Steerable,
        store: ButtonStore,
        bot: telegram.Bot,
        requests: list[HTTPXRequest] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.allowlist = Allowlist(frozenset(config.allowed_user_ids), chat_ids)
        self.rate = RateLimit(config.rate_per_minute, config.rate_burst)
        self.watcher = watcher
        self.acts = Acts(watcher)
        self.store = store
        self.bot = bot
        self._requests = requests or []
        self.clock = clock
        self.bot_username: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.handled = 0  # updates handled (tests wait on it)

    @classmethod
    def from_settings(
        cls,
        config: ControlConfig,
        alerts: AlertsConfig,
        watcher: Steerable,
        *,
        environ: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> TelegramControl:
        bot, requests = build_control_bot(alerts, environ)
        return cls(
            config,
            chat_ids=config.chats(alerts.chat_id),
            watcher=watcher,
            store=ButtonStore(watcher.state_dir / FILENAME),
            bot=bot,
            requests=requests,
            clock=clock,
        )

    # -- the sender's hook -----------------------------------------------------------------

    def markup_for(self, card: Card) -> Markup | None:
        """Inline buttons for a card (``TelegramSender.markup_for``)."""
        return self.store.markup(card, self.clock())

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="telegram-control")

    async def stop(self) -> None:
        """Stop polling (a command being handled is cancelled before it acts)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for request in self._requests:
            with contextlib.suppress(Exception):
                await request.shutdown()

    def close(self) -> None:
        """Close the button store; after the sender stopped (it makes buttons)."""
        self.store.close()

    async def run(self) -> None:
        """Poll until cancelled. Telegram errors back off; they never end the task."""
        log.info("telegram commands: polling (%d user(s) allowed)", len(self.allowlist.user_ids))
        backoff = 1.0
        while True:
            if self.bot_username is None:
                with contextlib.suppress(TelegramError):
                    self.bot_username = (await self.bot.get_me()).username
            try:
                updates = await self.bot.get_updates(
                    offset=self.store.last_update_id() + 1,
                    timeout=int(self.config.poll_timeout_s),
                    allowed_updates=["message", "callback_query"],
                )
            except TelegramError as exc:
                log.warning(
                    "telegram commands: getUpdates failed (%s); retry in %.0fs", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            for update in updates:
                await self.handle(update)

    async def handle(self, update: Update) -> None:
        if update.update_id <= self.store.last_update_id():
            return  # already handled before a restart
        self.store.set_last_update_id(update.update_id)  # at most once, even on a crash
        try:
            if update.callback_query is not None:
                await self._on_button(update.callback_query)
            elif update.message is not None and update.message.text:
                await self._on_message(update.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("telegram update %d could not be handled", update.update_id)
        finally:
            self.handled += 1

    # -- replies ---------------------------------------------------------------------------

    async def _reply(self, message: Message, text: str, *, html: bool = False) -> None:
        try:
            await self.bot.send_message(
                chat_id=message.chat_id,
                text=text,
                parse_mode=ParseMode.HTML if html else None,
                message_thread_id=message.message_thread_id,
                reply_parameters=ReplyParameters(
                    message.message_id, allow_sending_without_reply=True
                ),
            )
        except TelegramError as exc:
            log.warning("telegram commands: reply failed: %s", exc)

    async def _answer(self, query: CallbackQuery, text: str, *, alert: bool = False) -> None:
        try:
            await self.bot.answer_callback_query(query.id, text=text[:200], show_alert=alert)
        except TelegramError as exc:
            log.warning("telegram commands: answering a button failed: %s", exc)

    async def _edit(self, query: CallbackQuery, text: str) -> None:
        message = query.message
        if message is None:
            return
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=message.chat.id, message_id=message.message_id
            )
        except TelegramError as exc:
            log.warning("telegram commands: editing the confirmation failed: %s", exc)

    # -- messages --------------------------------------------------------------------------

    async def _on_message(self, message: Message) -> None:
        text = message.text or ""
        if command_name(text, self.bot_username) is None:
            return  # chatter, or a command for another bot
        now = self.clock()
        user = message.from_user
        actor = actor_of(user)
        why = self.allowlist.refusal(user.id if user else None, message.chat_id)
        if why is not None:
            log.warning("telegram commands: refused %s in chat %s: %s", actor, message.chat_id, why)
            await self.acts.refuse(actor, text, why, message.chat_id, now)
            uid = user.id if user else "unknown"
            await self._reply(
                message,
                f"⛔ Not allowed: {why}. Your Telegram user id is {uid}. "
                "This attempt was recorded in the audit log.",
            )
            return
        assert user is not None
        try:
            cmd = parse_command(
                text,
                self.watcher.state.chains,
                bot_username=self.bot_username,
                max_hold_s=self.config.max_hold_s,
                max_mute_s=self.config.max_mute_s,
            )
        except CommandError as exc:
            await self._reply(message, f"⚠️ {exc}. Nothing changed.")
            return
        if isinstance(cmd, HelpCommand):
            await self._reply(message, HELP)
            return
        if isinstance(cmd, StatusCommand):
            await self._reply(message, await self.status_text(now), html=True)
            return
        age = now - message.date.timestamp()
        if age > self.config.command_ttl_s:
            why = (
                f"stale command ({_minutes(age)} old, limit {_minutes(self.config.command_ttl_s)})"
            )
            await self.acts.refuse(actor, text, why, message.chat_id, now)
            await self._reply(message, f"⌛ Not acting on a {why}. Send it again. Nothing changed.")
            return
        wait = self.rate.take(user.id, now)
        if wait > 0:
            await self._reply(
                message, f"🐢 Too many actions; try again in {wait:.0f} s. Nothing changed."
            )
            return
        await self._reply(message, await self.acts.run(cmd, actor, now))

    async def status_text(self, now: float) -> str:
        from watcher.status import collect

        try:  # file and SQLite reads: off the loop the journal tail runs on
            return render_status(await asyncio.to_thread(collect, self.watcher.state_dir, now))
        except FileNotFoundError:
            return "The watcher has not written its state yet."

    # -- buttons ---------------------------------------------------------------------------

    async def _on_button(self, query: CallbackQuery) -> None:
        now = self.clock()
        user = query.from_user
        actor = actor_of(user)
        chat_id = query.message.chat.id if query.message is not None else None
        data = query.data or ""
        why = self.allowlist.refusal(user.id, chat_id)
        if why is not None:
            log.warning(
                "telegram commands: refused %s (button) in chat %s: %s", actor, chat_id, why
            )
            await self.acts.refuse(actor, f"button {data}", why, chat_id, now)
            await self._answer(
                query,
                f"⛔ Not allowed: {why}. Your Telegram user id is {user.id}. "
                "This attempt was recorded.",
                alert=True,
            )
            return
        kind, _, ident = data.partition(":")
        if kind == "b":
            await self._pressed(query, ident, actor, chat_id, now)
        elif kind in ("c", "x"):
            await self._confirmed(query, ident, kind == "c", actor, chat_id, now)
        else:
            await self._answer(query, "Unknown button.", alert=True)

    async def _pressed(
        self, query: CallbackQuery, ident: str, actor: str, chat_id: int | None, now: float
    ) -> None:
        button = self.store.button(ident)
        if button is None:
            await self._answer(query, "This button is unknown here (pruned or another watcher).")
            return
        age = now - button.issued_at
        if is_stale(button.issued_at, now, self.config.button_ttl_s):
            why = f"stale button ({_minutes(age)} old, limit {_minutes(self.config.button_ttl_s)})"
            await self.acts.refuse(actor, f"button {button.action}", why, chat_id, now)
            await self._answer(
                query,
                f"⌛ Refused: {why}. Nothing changed. Use a command instead (/help).",
                alert=True,
            )
            return
        conf = self.store.ask(button, query.from_user.id, now)
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"c:{conf.id}"),
                    InlineKeyboardButton("Cancel", callback_data=f"x:{conf.id}"),
                ]
            ]
        )
        question = f"Confirm: {button.describe()}? (asked by {actor})"
        try:
            await self.bot.send_message(
                chat_id=chat_id or 0,
                text=question,
                reply_markup=keyboard,
                reply_parameters=ReplyParameters(
                    query.message.message_id, allow_sending_without_reply=True
                )
                if query.message is not None
                else None,
            )
        except TelegramError as exc:
            log.warning("telegram commands: asking for confirmation failed: %s", exc)
        await self._answer(query, "Confirm or cancel below.")

    async def _confirmed(
        self,
        query: CallbackQuery,
        ident: str,
        confirm: bool,
        actor: str,
        chat_id: int | None,
        now: float,
    ) -> None:
        conf = self.store.confirmation(ident)
        if conf is None:
            await self._answer(query, "This confirmation is unknown here.", alert=True)
            return
        if conf.user_id != query.from_user.id:
            await self._answer(query, "Only the person who pressed the button can confirm it.")
            return
        if conf.state != "open":
            await self._answer(query, f"Already {conf.state}.")
            return
        if not confirm:
            self.store.close_confirmation(ident, "cancelled")
            await self._edit(query, "Cancelled. Nothing changed.")
            await self._answer(query, "Cancelled.")
            return
        age = now - conf.issued_at
        if is_stale(conf.issued_at, now, self.config.confirm_ttl_s):
            self.store.close_confirmation(ident, "cancelled")
            limit = _minutes(self.config.confirm_ttl_s)
            why = f"stale confirmation ({_minutes(age)} old, limit {limit})"
            await self.acts.refuse(actor, "confirm", why, chat_id, now)
            await self._edit(query, f"⌛ Refused: {why}. Nothing changed.")
            await self._answer(query, "Too late: nothing changed.", alert=True)
            return
        wait = self.rate.take(query.from_user.id, now)
        if wait > 0:
            await self._answer(
                query,
                f"🐢 Too many actions; try again in {wait:.0f} s. Nothing changed.",
                alert=True,
            )
            return
        button = self.store.button(conf.button_id)
        if button is None or not self.store.close_confirmation(ident, "done"):
            await self._answer(query, "Already done.")
            return
        result = await self.acts.press(button, actor, now)
        await self._edit(query, f"{button.describe().capitalize()}:\n{result}")
        await self._answer(query, "Done." if "❌" not in result else "Refused; see the reply.")
