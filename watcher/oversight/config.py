"""``[control]``: who may steer the watcher from Telegram, and how fast things go stale.

Reuses the ``[alerts]`` bot (token reference and ``base_url``); nothing secret lives
here. Off by default: a bot that only sends cards accepts no commands at all.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watcher.support.durations import MAX_HOLD_S


class ControlConfig(BaseModel):
    """Operator commands and card buttons over Telegram (long polling; no inbound port)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    allowed_user_ids: list[int] = Field(
        default_factory=list, description="Telegram user ids that may act (required)."
    )
    allowed_chat_ids: list[int] | None = Field(
        default=None, description="Chats commands are taken from; default: the alerts chat."
    )
    button_ttl_s: float = Field(
        default=1800.0, gt=0, description="A card's button pressed later than this is stale."
    )
    confirm_ttl_s: float = Field(
        default=120.0, gt=0, description="A Confirm pressed later than this is stale."
    )
    command_ttl_s: float = Field(
        default=300.0, gt=0, description="A command older than this when read is not run."
    )
    rate_per_minute: float = Field(
        default=6.0, gt=0, description="State-changing actions per user per minute."
    )
    rate_burst: int = Field(default=3, ge=1, description="Actions allowed back to back.")
    max_hold_s: float = Field(default=MAX_HOLD_S, gt=0)
    max_mute_s: float = Field(default=86400.0, gt=0)
    poll_timeout_s: float = Field(default=25.0, gt=0, le=50, description="getUpdates long poll.")

    @model_validator(mode="after")
    def _someone_may_act(self) -> ControlConfig:
        if self.enabled and not self.allowed_user_ids:
            raise ValueError(
                "enabled with an empty allowed_user_ids: nobody could act; list the "
                "Telegram user ids allowed to (see README, 'Telegram commands')"
            )
        if self.allowed_chat_ids is not None and not self.allowed_chat_ids:
            raise ValueError("allowed_chat_ids is empty: omit it to use the alerts chat")
        return self

    def chats(self, alerts_chat_id: int) -> frozenset[int]:
        if self.allowed_chat_ids is None:
            return frozenset({alerts_chat_id})
        return frozenset(self.allowed_chat_ids)
