"""Typed, immutable configuration for Telegram alerting.

The bot token is never in the config itself, only a reference to where it lives
(``cred:NAME`` for a systemd credential, ``env:NAME`` for an environment variable), so
the config file can be read, diffed and shown in ``status`` without leaking anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watcher.alerts.secret import Secret

_TOKEN_REF = re.compile(r"^(cred|env):([A-Za-z0-9_.@-]{1,128})$")

DEFAULT_BASE_URL = "https://api.telegram.org/bot"


class TokenUnavailable(RuntimeError):
    """The token reference points at nothing usable. The message never holds the token."""


class AlertsConfig(BaseModel):
    """Telegram alerting: where to send, how hard to dedup, how much to keep, how fast."""

    # hide_input_in_errors: a token pasted where its reference belongs must not be echoed.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    bot_token: str = Field(
        description="Where the bot token lives: 'cred:NAME' ($CREDENTIALS_DIRECTORY/NAME) "
        "or 'env:NAME'. Never the token itself."
    )
    chat_id: int = Field(description="Positive for a private chat, negative for a group.")
    message_thread_id: int | None = Field(default=None, description="Forum topic, if any.")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Bot API base, ending in /bot.")
    timezone: str = Field(default="UTC", description="IANA zone for the times on cards.")

    dedup_window_s: float = Field(default=60.0, gt=0)
    dominance_min_suppressed: int = Field(default=10, ge=1)
    dominance_ratio: float = Field(default=2.0, gt=0)
    dominance_window_s: float = Field(default=3600.0, gt=0)

    outbox_limit: int = Field(default=10_000, ge=10)

    private_per_second: float = Field(default=1.0, gt=0)
    group_per_minute: float = Field(default=20.0, gt=0)

    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _hide_a_pasted_token(cls, data: Any) -> Any:
        """Swap a non-reference for a placeholder before validation reports it.

        ``hide_input_in_errors`` only works where this model is validated on its own; as
        a section of a larger config, the parent's setting decides what errors echo.
        """
        if isinstance(data, dict):
            value = data.get("bot_token")
            if isinstance(value, str) and not _TOKEN_REF.match(value):
                data = {**data, "bot_token": "[hidden: not a cred:/env: reference]"}
        return data

    @field_validator("bot_token")
    @classmethod
    def _token_is_a_reference(cls, value: str) -> str:
        if not _TOKEN_REF.match(value):
            # Do not echo the value: it may be a token pasted in by mistake.
            raise ValueError("must be a reference 'cred:NAME' or 'env:NAME', not the token itself")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def resolve_token(
    reference: str,
    *,
    environ: dict[str, str] | None = None,
) -> Secret:
    """Read the token a ``cred:NAME``/``env:NAME`` reference points at."""
    env = os.environ if environ is None else environ
    match = _TOKEN_REF.match(reference)
    if not match:
        raise TokenUnavailable("bot token reference must be 'cred:NAME' or 'env:NAME'")
    kind, name = match.groups()
    if kind == "env":
        value = env.get(name, "").strip()
        if not value:
            raise TokenUnavailable(f"environment variable {name} is unset or empty")
        return Secret(value)
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not cred_dir:
        raise TokenUnavailable(
            f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is unset "
            "(use LoadCredential= in the unit)"
        )
    path = Path(cred_dir) / name
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenUnavailable(f"cannot read credential file {path}: {exc.strerror}") from None
    if not value:
        raise TokenUnavailable(f"credential file {path} is empty")
    return Secret(value)
