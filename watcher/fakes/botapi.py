"""A small fake Telegram Bot API on 127.0.0.1 for tests and the demo.

Drive the real python-telegram-bot against it with
``telegram.Bot(token, base_url=fake.base_url)``. It runs its own asyncio loop in a
daemon thread, so sync and async tests use it the same way::

    with FakeBotApi() as fake:
        bot = telegram.Bot(fake.token, base_url=fake.base_url)
        fake.script(Scripted.retry_after(1))   # the next sendMessage answers 429
        ...
        fake.wait_for_messages(3)

Implements ``getMe``, ``sendMessage``, ``editMessageText``, ``answerCallbackQuery``,
``getUpdates`` (scriptable with ``push_update``, or ``push_message``/``push_press`` for
a user's command or button press; long-polls) and ``deleteWebhook``.
Requests are form-encoded or JSON, at ``/bot<token>/<method>``; a wrong token gets 401.

``sendMessage`` with ``parse_mode=HTML`` is validated the way Telegram does
(``watcher.fakes.telegram_html``). Each recorded message keeps both the raw ``text``
and the ``plain_text`` a user would see.

Failures: ``script(...)`` queues one-shot answers for the next calls of a method
(429 with ``retry_after``, 400, 403, migration, 5xx, hang, close without answer);
``go_down()``/``come_up()`` refuse connections (the port is released and re-bound);
``outage(answer)`` gives every call the same failure (hang, 5xx, 429) until cleared;
``migrate_chat``/``block_chat``/``forget_chat`` make a chat fail persistently.

The HTTP side is ``watcher.fakes._http.LoopbackHttpServer``, shared with the other
fakes; the answers and records are in ``watcher.fakes.botapi_wire``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from watcher.fakes._http import LoopbackHttpServer, Request, Response
from watcher.fakes.botapi_wire import (
    BOT_USER,
    DEFAULT_TOKEN,
    ApiCall,
    Scripted,
    SentMessage,
    chat_id_of,
    decode_params,
    error_body,
    message_json,
    sent_message_json,
    user_json,
)
from watcher.fakes.telegram_html import MAX_TEXT, HtmlError, parse_telegram_html

__all__ = [
    "DEFAULT_TOKEN", "MAX_TEXT", "ApiCall", "FakeBotApi", "Scripted", "SentMessage",
    "message_json", "parse_telegram_html",
]


@dataclass
class _Chats:
    migrated: dict[int, int] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)


class FakeBotApi(LoopbackHttpServer):
    """The fake server. ``start()``/``stop()`` or use it as a context manager."""

    thread_name = "fake-botapi"

    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.token = token
        self.max_poll_s = 1.0  # cap on getUpdates long-polling
        self._lock = threading.Condition()
        self._messages: list[SentMessage] = []
        self._calls: list[ApiCall] = []
        self._scripts: dict[str, list[Scripted]] = {}
        self._outages: dict[str, Scripted] = {}  # method -> every answer until cleared
        self._updates: list[dict[str, Any]] = []
        self._chats = _Chats()
        self._next_message_id = 1
        self._next_user_message_id = 100_000
        self._updates_event: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to pass as ``telegram.Bot(..., base_url=...)``."""
        return f"{self.url}/bot"

    async def on_open(self) -> None:
        self._updates_event = asyncio.Event()

    def start(self) -> FakeBotApi:
        self.start_in_thread()
        return self

    def stop(self) -> None:
        self.stop_in_thread()

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_down(self) -> None:
        """Refuse connections (and drop open ones) until ``come_up``."""
        self.run_on_loop(self.close_listener())

    def come_up(self) -> None:
        self.run_on_loop(self.open())

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: Scripted, method: str = "sendMessage") -> None:
        """Queue one-shot answers for the next calls of ``method``."""
        with self._lock:
            self._scripts.setdefault(method, []).extend(answers)

    def outage(self, answer: Scripted | None, *, method: str = "sendMessage") -> None:
        """Answer every call of ``method`` with ``answer`` (e.g. ``Scripted.hang(30)`` for
        a Telegram that accepts connections but never answers, or a 502 on every call)
        until ``outage(None)``. One-shot ``script`` answers still come first."""
        with self._lock:
            if answer is None:
                self._outages.pop(method, None)
            else:
                self._outages[method] = answer

    def migrate_chat(self, old: int, new: int) -> None:
        with self._lock:
            self._chats.migrated[old] = new

    def block_chat(self, chat_id: int) -> None:
        with self._lock:
            self._chats.blocked.add(chat_id)

    def forget_chat(self, chat_id: int) -> None:
        with self._lock:
            self._chats.missing.add(chat_id)

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for ``getUpdates`` (``update_id`` is assigned if missing)."""
        with self._lock:
            update = dict(update)
            last = self._updates[-1]["update_id"] if self._updates else 0
            update.setdefault("update_id", last + 1)
            self._updates.append(update)
        if self._updates_event is not None:
            self.call_soon(self._updates_event.set)

    def push_message(
        self,
        text: str,
        *,
        user_id: int,
        chat_id: int,
        username: str | None = None,
        date: float | None = None,
    ) -> int:
        """Queue a user's text message (a command) for ``getUpdates``; returns its
        message id (replies to it carry ``reply_to`` set to that id)."""
        with self._lock:
            message_id = self._next_user_message_id
            self._next_user_message_id += 1
        self.push_update(
            {"message": message_json(text, user_id, chat_id, username, date, message_id)}
        )
        return message_id

    def push_press(
        self,
        data: str,
        *,
        user_id: int,
        chat_id: int,
        message_id: int,
        username: str | None = None,
    ) -> None:
        """Queue a press of an inline button (a callback query) on ``message_id``."""
        with self._lock:
            query_id = f"q{len(self._updates) + 1}"
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user_json(user_id, username),
                    "chat_instance": str(chat_id),
                    "data": data,
                    "message": {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                        "from": BOT_USER,
                        "text": "card",
                    },
                }
            }
        )

    # -- inspection --------------------------------------------------------------------

    def answers(self) -> list[dict[str, Any]]:
        """The parameters of every ``answerCallbackQuery`` (``text``, ``show_alert``)."""
        return [c.params for c in self.calls if c.method == "answerCallbackQuery"]

    @property
    def messages(self) -> list[SentMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[SentMessage]:
        """Block until at least ``count`` messages arrived (or raise TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._messages)} of {count} messages arrived")
                self._lock.wait(left)
            return list(self._messages)

    # -- HTTP --------------------------------------------------------------------------

    async def handle(self, request: Request, reader: asyncio.StreamReader) -> Response | None:
        path = request.path
        prefix = f"/bot{self.token}/"
        if not path.startswith("/bot"):
            return Response.json(404, error_body(404, "Not Found"))
        if not path.startswith(prefix):
            return Response.json(401, error_body(401, "Unauthorized"))
        method = path[len(prefix) :]
        params = decode_params(request.headers.get("content-type", ""), request.body)
        with self._lock:
            queue = self._scripts.get(method) or []
            scripted = queue.pop(0) if queue else self._outages.get(method)
        if scripted is not None:
            if scripted.deliver and method == "sendMessage":
                self._handle_send(params)
            self._record(method, params, scripted.status)
            if scripted.hang_s:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), scripted.hang_s)
            if scripted.close or scripted.body is None:
                return None
            return Response.json(scripted.status, scripted.body)
        status, answer = await self._dispatch(method, params)
        self._record(method, params, status)
        return Response.json(status, answer)

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        with self._lock:
            self._calls.append(ApiCall(method, params, status, time.monotonic()))

    async def _dispatch(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method == "sendMessage":
            return self._handle_send(params)
        if method == "editMessageText":
            return self._handle_edit(params)
        if method in ("answerCallbackQuery", "deleteWebhook"):
            return 200, {"ok": True, "result": True}
        if method == "getUpdates":
            return 200, {"ok": True, "result": await self._handle_updates(params)}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def _chat_error(self, chat_id: int | str) -> tuple[int, dict[str, Any]] | None:
        if not isinstance(chat_id, int):
            return None
        with self._lock:
            chats = self._chats
            if chat_id in chats.migrated:
                s = Scripted.migrated(chats.migrated[chat_id])
            elif chat_id in chats.blocked:
                s = Scripted.bot_blocked()
            elif chat_id in chats.missing:
                s = Scripted.chat_not_found()
            else:
                return None
        assert s.body is not None
        return s.status, s.body

    def _handle_send(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = chat_id_of(params.get("chat_id"))
        text = str(params.get("text", ""))
        if chat_id == "" or not text:
            return 400, error_body(400, "Bad Request: message text is empty")
        failed = self._chat_error(chat_id)
        if failed:
            return failed
        parse_mode = params.get("parse_mode")
        plain = text
        if parse_mode == "HTML":
            try:
                plain = parse_telegram_html(text)
            except HtmlError as exc:
                return 400, error_body(400, f"Bad Request: can't parse entities: {exc}")
        if len(plain) > MAX_TEXT:
            return 400, error_body(400, "Bad Request: message is too long")
        thread = params.get("message_thread_id")
        markup = params.get("reply_markup")
        reply = params.get("reply_parameters")
        if isinstance(reply, str):
            reply = json.loads(reply)
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        with self._lock:
            message = SentMessage(
                message_id=self._next_message_id,
                chat_id=chat_id,
                text=text,
                plain_text=plain,
                parse_mode=parse_mode,
                message_thread_id=None if thread in (None, "") else int(thread),
                reply_markup=json.loads(markup) if isinstance(markup, str) else markup,
                date=int(time.time()),
                reply_to=None if reply_to is None else int(reply_to),
            )
            self._next_message_id += 1
            self._messages.append(message)
            self._lock.notify_all()
        return 200, {"ok": True, "result": sent_message_json(message)}

    def _handle_edit(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message_id = int(params.get("message_id", 0))
        with self._lock:
            for i, old in enumerate(self._messages):
                if old.message_id == message_id:
                    text = str(params.get("text", ""))
                    markup = params.get("reply_markup")
                    new = SentMessage(
                        old.message_id,
                        old.chat_id,
                        text,
                        text,
                        params.get("parse_mode"),
                        old.message_thread_id,
                        json.loads(markup) if isinstance(markup, str) else markup,
                        old.date,
                    )
                    self._messages[i] = new
                    return 200, {"ok": True, "result": sent_message_json(new)}
        return 400, error_body(400, "Bad Request: message to edit not found")

    async def _handle_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), self.max_poll_s)
        deadline = time.monotonic() + timeout
        assert self._updates_event is not None
        while True:
            with self._lock:
                pending = [u for u in self._updates if u["update_id"] >= offset]
            left = deadline - time.monotonic()
            if pending or left <= 0:
                return pending
            self._updates_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._updates_event.wait(), left)
