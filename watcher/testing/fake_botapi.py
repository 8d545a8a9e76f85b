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

``sendMessage`` with ``parse_mode=HTML`` is validated the way Telegram does (only its
tags, balanced, every ``<``/``>``/``&`` outside a tag escaped), so an unescaped card
gets "can't parse entities" here exactly as it would in production. Each recorded
message keeps both the raw ``text`` and the ``plain_text`` a user would see.

Failures: ``script(...)`` queues one-shot answers for the next calls of a method
(429 with ``retry_after``, 400, 403, migration, 5xx, hang, close without answer);
``go_down()``/``come_up()`` refuse connections (the port is released and re-bound);
``outage(answer)`` gives every call the same failure (hang, 5xx, 429) until cleared;
``migrate_chat``/``block_chat``/``forget_chat`` make a chat fail persistently.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

DEFAULT_TOKEN = "123456:TEST-fake-token-for-loopback-only"  # noqa: S105 (a fake)
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Failover Watcher (fake)",
    "username": "fake_watcher_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_TAG = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:="[^"<>]*")?)*)\s*>')
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
MAX_TEXT = 4096


class HtmlError(ValueError):
    """What Telegram says about bad HTML: "Bad Request: can't parse entities: ..."."""


def parse_telegram_html(text: str) -> str:
    """Validate Telegram HTML and return the plain text a user would see."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "<":
            match = _TAG.match(text, pos)
            if match is None:
                raise HtmlError(f"Unsupported start tag at byte offset {pos}")
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name not in HTML_TAGS:
                raise HtmlError(f'Unsupported start tag "{name}" at byte offset {pos}')
            if closing:
                if not stack or stack[-1] != name:
                    raise HtmlError(f'Unmatched end tag at byte offset {pos}, expected "</{name}>"')
                stack.pop()
            else:
                stack.append(name)
            pos = match.end()
        elif ch == "&":
            match = _ENTITY.match(text, pos)
            if match is None:
                raise HtmlError(f"Unknown entity or bare '&' at byte offset {pos}")
            out.append(html.unescape(match.group()))
            pos = match.end()
        elif ch == ">":
            raise HtmlError(f"Unexpected '>' at byte offset {pos}")
        else:
            out.append(ch)
            pos += 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


@dataclass(frozen=True)
class Scripted:
    """One scripted answer (use the constructors)."""

    status: int
    body: dict[str, Any] | None = None  # None: no answer (see ``hang_s``/``close``)
    hang_s: float = 0.0  # wait this long before answering (or closing)
    close: bool = False  # drop the connection without an answer
    deliver: bool = False  # record the message anyway (it "arrived" before the fault)

    @staticmethod
    def _error(status: int, description: str, **parameters: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return body

    @classmethod
    def retry_after(cls, seconds: int) -> Scripted:
        return cls(
            429,
            cls._error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds),
        )

    @classmethod
    def bad_request(cls, description: str = "Bad Request: message text is empty") -> Scripted:
        return cls(400, cls._error(400, description))

    @classmethod
    def cant_parse_entities(cls) -> Scripted:
        return cls.bad_request(
            'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0'
        )

    @classmethod
    def chat_not_found(cls) -> Scripted:
        return cls.bad_request("Bad Request: chat not found")

    @classmethod
    def bot_blocked(cls) -> Scripted:
        return cls(403, cls._error(403, "Forbidden: bot was blocked by the user"))

    @classmethod
    def migrated(cls, new_chat_id: int) -> Scripted:
        return cls(
            400,
            cls._error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=new_chat_id,
            ),
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Scripted:
        return cls(status, cls._error(status, "Internal Server Error"))

    @classmethod
    def hang(cls, seconds: float = 3600.0, *, deliver: bool = False) -> Scripted:
        """Answer nothing for ``seconds``, then drop the connection."""
        return cls(0, None, hang_s=seconds, close=True, deliver=deliver)

    @classmethod
    def close_connection(cls, *, deliver: bool = False) -> Scripted:
        return cls(0, None, close=True, deliver=deliver)


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int | str
    text: str
    plain_text: str
    parse_mode: str | None
    message_thread_id: int | None
    reply_markup: Any
    date: int
    reply_to: int | None = None  # reply_parameters.message_id, when it answers a message


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: dict[str, Any]
    answered: int  # HTTP status, 0 for no answer
    at: float  # time.monotonic() when the request arrived


@dataclass
class _Chats:
    migrated: dict[int, int] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)


class FakeBotApi:
    """The fake server. ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1") -> None:
        if host != "127.0.0.1":
            raise ValueError("the fake Bot API binds 127.0.0.1 only")
        self.token = token
        self.host = host
        self.port = 0
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._updates_event: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to pass as ``telegram.Bot(..., base_url=...)``."""
        return f"http://{self.host}:{self.port}/bot"

    def start(self) -> FakeBotApi:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._updates_event = asyncio.Event()
            self._stopping = asyncio.Event()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-botapi", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("fake Bot API did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(5)
        loop.close()
        self._loop = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_down(self) -> None:
        """Refuse connections (and drop open ones) until ``come_up``."""
        self._run(self._close_listener())

    def come_up(self) -> None:
        self._run(self._listen())

    def _run(self, coro: Any) -> Any:
        assert self._loop is not None, "start() the fake first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()
        await self._close_listener()
        # Connection handlers end on their own once their transports are aborted
        # (cancelling them makes asyncio's stream callback log a CancelledError).
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            _, pending = await asyncio.wait(others, timeout=2)
            for task in pending:
                task.cancel()

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
        if self._loop is not None and self._updates_event is not None:
            self._loop.call_soon_threadsafe(self._updates_event.set)

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
                    "from": _user_json(user_id, username),
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

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                path, headers, body = request
                keep = await self._respond(writer, path, headers, body)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(
        self, writer: asyncio.StreamWriter, path: str, headers: dict[str, str], body: bytes
    ) -> bool:
        prefix = f"/bot{self.token}/"
        if not path.startswith("/bot"):
            await _write(writer, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return True
        if not path.startswith(prefix):
            await _write(
                writer, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
            return True
        method = path[len(prefix) :].split("?", 1)[0]
        params = _decode_params(headers.get("content-type", ""), body)
        with self._lock:
            queue = self._scripts.get(method) or []
            scripted = queue.pop(0) if queue else self._outages.get(method)
        if scripted is not None:
            if scripted.deliver and method == "sendMessage":
                self._handle_send(params)
            self._record(method, params, scripted.status)
            if scripted.hang_s:
                assert self._stopping is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), scripted.hang_s)
            if scripted.close or scripted.body is None:
                writer.transport.abort()
                return False
            await _write(writer, scripted.status, scripted.body)
            return True
        status, answer = await self._dispatch(method, params)
        self._record(method, params, status)
        await _write(writer, status, answer)
        return True

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
        chat_id = _chat(params.get("chat_id"))
        text = str(params.get("text", ""))
        if chat_id == "" or not text:
            return 400, Scripted._error(400, "Bad Request: message text is empty")
        failed = self._chat_error(chat_id)
        if failed:
            return failed
        parse_mode = params.get("parse_mode")
        plain = text
        if parse_mode == "HTML":
            try:
                plain = parse_telegram_html(text)
            except HtmlError as exc:
                return 400, Scripted._error(400, f"Bad Request: can't parse entities: {exc}")
        if len(plain) > MAX_TEXT:
            return 400, Scripted._error(400, "Bad Request: message is too long")
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
        return 200, {"ok": True, "result": _message_json(message)}

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
                    return 200, {"ok": True, "result": _message_json(new)}
        return 400, Scripted._error(400, "Bad Request: message to edit not found")

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


def _user_json(user_id: int, username: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
    if username:
        user["username"] = username
    return user


def message_json(
    text: str,
    user_id: int,
    chat_id: int,
    username: str | None = None,
    date: float | None = None,
    message_id: int = 10_000,
) -> dict[str, Any]:
    """A user's message as the Bot API delivers it in an update."""
    entities = []
    if text.startswith("/"):
        entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
    return {
        "message_id": message_id,
        "date": int(time.time() if date is None else date),
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
        "from": _user_json(user_id, username),
        "text": text,
        "entities": entities,
    }


def _chat(value: Any) -> int | str:
    if value is None:
        return ""
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _message_json(m: SentMessage) -> dict[str, Any]:
    chat_type = "private" if isinstance(m.chat_id, int) and m.chat_id > 0 else "supergroup"
    data: dict[str, Any] = {
        "message_id": m.message_id,
        "date": m.date,
        "chat": {"id": m.chat_id, "type": chat_type},
        "from": BOT_USER,
        "text": m.plain_text,
    }
    if m.message_thread_id is not None:
        data["message_thread_id"] = m.message_thread_id
        data["is_topic_message"] = True
    return data


def _decode_params(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    if content_type.startswith("application/x-www-form-urlencoded") or not content_type:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    raise ValueError(f"unsupported content type {content_type!r}")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return parts[1], headers, body


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


async def _write(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode("latin-1")
    writer.write(head + payload)
    await writer.drain()
