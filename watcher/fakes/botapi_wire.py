"""What the fake Bot API says and keeps: scripted answers, recorded messages and
calls, and the JSON shapes of users and messages in Telegram's updates."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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


def error_body(status: int, description: str, **parameters: Any) -> dict[str, Any]:
    """A Bot API error answer: ``{"ok": false, "error_code", "description"}``."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@dataclass(frozen=True)
class Scripted:
    """One scripted answer (use the constructors)."""

    status: int
    body: dict[str, Any] | None = None  # None: no answer (see ``hang_s``/``close``)
    hang_s: float = 0.0  # wait this long before answering (or closing)
    close: bool = False  # drop the connection without an answer
    deliver: bool = False  # record the message anyway (it "arrived" before the fault)

    @classmethod
    def retry_after(cls, seconds: int) -> Scripted:
        return cls(
            429,
            error_body(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds),
        )

    @classmethod
    def bad_request(cls, description: str = "Bad Request: message text is empty") -> Scripted:
        return cls(400, error_body(400, description))

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
        return cls(403, error_body(403, "Forbidden: bot was blocked by the user"))

    @classmethod
    def migrated(cls, new_chat_id: int) -> Scripted:
        return cls(
            400,
            error_body(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=new_chat_id,
            ),
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Scripted:
        return cls(status, error_body(status, "Internal Server Error"))

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


def user_json(user_id: int, username: str | None) -> dict[str, Any]:
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
        "from": user_json(user_id, username),
        "text": text,
        "entities": entities,
    }


def chat_id_of(value: Any) -> int | str:
    if value is None:
        return ""
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def sent_message_json(m: SentMessage) -> dict[str, Any]:
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


def decode_params(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    if content_type.startswith("application/x-www-form-urlencoded") or not content_type:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    raise ValueError(f"unsupported content type {content_type!r}")
