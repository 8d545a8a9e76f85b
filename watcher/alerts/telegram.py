"""The Telegram sender: claims cards from the outbox, sends them, marks each one.

One HTTP seam: ``BotApi`` (implemented by ``PtbBotApi`` over python-telegram-bot's
``telegram.Bot``, whose ``base_url`` is configurable so tests and the demo point it at
the loopback fake). The operator-command side (watcher.oversight) reuses ``build_bot``.

Errors, decided by ``classify_error``:
- transient (``NetworkError``, ``TimedOut``, 5xx, ``RetryAfter``, invalid token): the
  card stays at the head of the queue; retry with exponential backoff and jitter, or
  exactly ``retry_after`` when Telegram says so. An invalid token is retried rather than
  dead-lettered: fixing it means a restart, and the cards should still be there.
- permanent (``BadRequest`` incl. "can't parse entities" and "chat not found",
  ``Forbidden`` bot blocked): dead-lettered, with a log line and a metric. Dead letters
  stay in the outbox and can be requeued.
- ``ChatMigrated``: the new chat id is persisted in the outbox and the card resent there.
- anything else: retried up to ``max_unknown_attempts``, then dead-lettered.

The sender is its own asyncio task. It never runs on the producer's path: ``enqueue``
is a local write, and a slow or dead Telegram only grows the outbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
import telegram
from telegram import InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from watcher.alerts.outbox import Card, Outbox
from watcher.alerts.pacing import Backoff, ChatRateLimit
from watcher.alerts.secret import Secret, protect
from watcher.support.metrics import AlertMetrics, SinkMetrics
from watcher.support.tasks import finish, wake_threadsafe

log = logging.getLogger(__name__)
T = TypeVar("T")

# python-telegram-bot 22.2+ warns on every ``RetryAfter`` it raises unless the timedelta
# behaviour of its time attributes is opted into; opt in (both types are handled below).
os.environ.setdefault("PTB_TIMEDELTA", "true")

REPEAT_NOTE = "<i>↻ possibly a repeat: an earlier attempt may have been delivered</i>"
MIGRATION_META = "chat_migrated:"
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# httpx errors after which the request certainly did not reach Telegram.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout)


def build_bot(
    token: Secret,
    *,
    base_url: str,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
) -> telegram.Bot:
    """A ``telegram.Bot`` whose token can appear in no log record (see ``secret.protect``)."""
    protect(token)
    request = HTTPXRequest(
        connection_pool_size=4,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        write_timeout=read_timeout,
        pool_timeout=1.0,
    )
    return telegram.Bot(token.reveal(), base_url=base_url, request=request)


Markup = dict[str, Any]
"""An inline keyboard as the Bot API spells it: ``{"inline_keyboard": [[{...}]]}``."""

MarkupHook = Callable[[Card], Markup | None]
"""Gives a card its inline buttons (the operator commands), or None."""


class BotApi(Protocol):
    """The one seam to the Bot API the sender needs."""

    async def send_card(
        self, chat_id: int, text: str, thread_id: int | None, reply_markup: Markup | None = None
    ) -> int | None:
        """Send one HTML card (with inline buttons when given); return its message id."""

    async def close(self) -> None: ...


class PtbBotApi:
    """``BotApi`` over python-telegram-bot."""

    def __init__(self, bot: telegram.Bot) -> None:
        self.bot = bot

    async def send_card(
        self, chat_id: int, text: str, thread_id: int | None, reply_markup: Markup | None = None
    ) -> int | None:
        message = await self.bot.send_message(
            chat_id=chat_id,
            text=text,
            parse_mode=ParseMode.HTML,
            message_thread_id=thread_id,
            link_preview_options=_NO_PREVIEW,
            reply_markup=InlineKeyboardMarkup.de_json(reply_markup, self.bot)
            if reply_markup
            else None,
        )
        return message.message_id

    async def close(self) -> None:
        # ``Bot.shutdown`` is a no-op for a bot never ``initialize``d (which would need
        # a getMe round trip at startup, failing while Telegram is down), so close the
        # HTTP client it sends with ourselves.
        await self.bot.shutdown()
        await self.bot.request.shutdown()


@dataclass(frozen=True)
class Failure:
    """What a failed send means. ``kind``: transient, unknown, permanent or migrate."""

    kind: str
    description: str
    retry_after: float | None = None
    ambiguous: bool = False  # the request may have reached Telegram
    new_chat_id: int | None = None


def _ambiguous(exc: BaseException) -> bool:
    cause = exc.__cause__
    if cause is None:
        # PTB raised it from an HTTP error answer: the server answered, nothing was posted.
        return False
    return not isinstance(cause, _NOT_SENT)


def classify_error(exc: BaseException) -> Failure:
    """Sort a send error into retry, give up, or follow a migration."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
        return Failure("transient", text, retry_after=seconds)
    if isinstance(exc, ChatMigrated):
        return Failure("migrate", text, new_chat_id=int(exc.new_chat_id))
    if isinstance(exc, BadRequest | Forbidden):  # BadRequest subclasses NetworkError
        return Failure("permanent", text)
    if isinstance(exc, TimedOut | NetworkError):
        return Failure("transient", text, ambiguous=_ambiguous(exc))
    if isinstance(exc, InvalidToken):
        return Failure("transient", text)
    if isinstance(exc, TelegramError):
        return Failure("unknown", text, ambiguous=_ambiguous(exc))
    return Failure("unknown", text, ambiguous=True)


class TelegramSender:
    """Delivers the outbox to one chat, oldest card first, paced, retried, marked."""

    def __init__(
        self,
        outbox: Outbox,
        api: BotApi,
        *,
        chat_id: int,
        thread_id: int | None = None,
        rate_limit: ChatRateLimit | None = None,
        backoff: Backoff | None = None,
        metrics: AlertMetrics | None = None,
        sink_metrics: SinkMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        idle_poll_s: float = 1.0,
        max_unknown_attempts: int = 10,
    ) -> None:
        self.outbox = outbox
        self.api = api
        self.configured_chat_id = chat_id
        self.thread_id = thread_id
        self.rate_limit = rate_limit or ChatRateLimit()
        self.backoff = backoff or Backoff()
        self.metrics = metrics
        self.sink_metrics = sink_metrics
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng
        self.idle_poll_s = idle_poll_s
        self.max_unknown_attempts = max_unknown_attempts
        self._failures = 0  # consecutive, across cards: an outage hits them all
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # Set by the operator commands: buttons for a card, made at send time
        # so a button's age counts from when the operator could first see it.
        self.markup_for: MarkupHook | None = None

    # -- chat id, following migrations -------------------------------------------------

    @property
    def chat_id(self) -> int:
        """The configured chat, or where Telegram said it migrated (persisted in the outbox)."""
        chat = self.configured_chat_id
        for _ in range(8):  # a group migrates once; bound the chain anyway
            moved = self.outbox.get_meta(f"{MIGRATION_META}{chat}")
            if moved is None:
                break
            chat = int(moved)
        return chat

    # -- task control ------------------------------------------------------------------

    def notify(self) -> None:
        """A card was enqueued: wake the sender if it idles. Safe from any thread."""
        wake_threadsafe(self._loop, self._wake)

    async def run(self) -> None:
        """Send until ``stop``; run it as its own task."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.current_task()
        log.info("telegram sender started (outbox depth %d)", self.outbox.depth())
        while not self._stopping:
            sentence, delay, wakeable = await self.deliver_next()
            if self.sink_metrics:
                self.sink_metrics.pending.labels("telegram").set(self.outbox.depth())
            if sentence:
                log.debug("telegram sender: %s", sentence)
            if delay > 0:
                await self._sleep(delay, wakeable=wakeable)
        log.info("telegram sender stopped (outbox depth %d)", self.outbox.depth())

    async def stop(self, grace_s: float = 5.0) -> None:
        """Finish the send in flight (up to ``grace_s``), then stop."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()
        # Cut off mid-send, the row stays 'sending': on restart it is resent marked
        # "possibly a repeat".
        await finish(self._task, grace_s)

    async def _sleep(self, delay: float, *, wakeable: bool) -> None:
        assert self._stop is not None and self._wake is not None
        events = [self._stop] + ([self._wake] if wakeable else [])
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- one step ----------------------------------------------------------------------

    @staticmethod
    async def _db(fn: Callable[..., T], *args: Any) -> T:
        """Outbox I/O (an fsync per mark) runs off the event loop, which the tail may share."""
        return await asyncio.to_thread(fn, *args)

    async def deliver_next(self) -> tuple[str, float, bool]:
        """Try the head of the outbox once: (what happened, seconds to wait, wakeable)."""
        if self._wake is not None:
            self._wake.clear()  # before looking, so a notify after the look is not lost
        card = await self._db(self.outbox.head)
        if card is None:
            return "", self.idle_poll_s, True
        chat = await self._db(lambda: self.chat_id)
        wait = self.rate_limit.wait_time(chat, self.clock())
        if wait > 0:
            return f"paced: next card in {wait:.2f}s", wait, False
        text, dropped = await self._db(self._decorate, card)
        # Buttons only when [control] installed the hook: no extra thread hop without.
        markup = None if self.markup_for is None else await self._db(self._markup, card)
        await self._db(self.outbox.mark_sending, card.id, chat)
        self.rate_limit.take(chat, self.clock())
        try:
            message_id = await self.api.send_card(chat, text, self.thread_id, markup)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._db(self._failed, card, chat, exc)
        await self._db(self.outbox.mark_sent, card.id, message_id, self.wall_clock())
        if dropped:
            await self._db(self.outbox.take_dropped_unreported, dropped)
        self._failures = 0
        if self.metrics:
            self.metrics.sent.labels(event=card.event).inc()
        if self.sink_metrics:
            self.sink_metrics.sent.labels("telegram").inc()
        return f"sent card #{card.id} ({card.event}) as message {message_id}", 0.0, False

    def _failed(self, card: Card, chat: int, exc: Exception) -> tuple[str, float, bool]:
        failure = classify_error(exc)
        if self.metrics:
            self.metrics.failed.labels(event=card.event).inc()
        if self.sink_metrics:
            self.sink_metrics.failed.labels("telegram").inc()
        if failure.kind == "migrate" and failure.new_chat_id is not None:
            self.outbox.set_meta(f"{MIGRATION_META}{chat}", str(failure.new_chat_id))
            self.outbox.mark_retry(card.id, failure.description, ambiguous=False)
            log.warning(
                "telegram chat %d migrated to %d; sending there from now on "
                "(update chat_id in the config)",
                chat,
                failure.new_chat_id,
            )
            return f"chat migrated to {failure.new_chat_id}", 0.0, False
        attempts = card.attempts + 1
        if failure.kind == "permanent" or (
            failure.kind == "unknown" and attempts >= self.max_unknown_attempts
        ):
            self.outbox.mark_dead(card.id, failure.description, self.wall_clock())
            if self.metrics:
                self.metrics.dead_lettered.labels(event=card.event).inc()
            if self.sink_metrics:
                self.sink_metrics.dead_lettered.labels("telegram").inc()
            log.error(
                "telegram card #%d (%s) dead-lettered after %d attempt(s): %s",
                card.id,
                card.event,
                attempts,
                failure.description,
            )
            return f"dead-lettered card #{card.id}: {failure.description}", 0.0, False
        self._failures += 1
        self.outbox.mark_retry(card.id, failure.description, ambiguous=failure.ambiguous)
        if failure.retry_after is not None:
            delay = failure.retry_after
        else:
            delay = self.backoff.delay(self._failures, self.rng)
        level = logging.WARNING if self._failures == 1 else logging.INFO
        log.log(
            level,
            "telegram send of card #%d (%s) failed (%s); retry %d in %.2fs",
            card.id,
            card.event,
            failure.description,
            self._failures,
            delay,
        )
        return f"retry card #{card.id} in {delay:.2f}s: {failure.description}", delay, False

    def _markup(self, card: Card) -> Markup | None:
        """The card's buttons; a failing hook costs the buttons, never the card."""
        if self.markup_for is None:
            return None
        try:
            return self.markup_for(card)
        except Exception:
            log.exception("inline buttons for card #%d failed; sending it without", card.id)
            return None

    def _decorate(self, card: Card) -> tuple[str, int]:
        """The stored card plus the sender's honest notes (repeat, drops reported)."""
        text = card.text
        if card.ambiguous:
            text += "\n" + REPEAT_NOTE
        dropped = self.outbox.dropped_unreported()
        if dropped:
            text += f"\n<i>⚠️ {dropped} older card(s) were dropped unsent: outbox full</i>"
        return text, dropped
