"""Telegram alerting: honest dedup, a durable outbox, and a paced, retrying sender.

Flow: ``Alert`` (from the core) -> ``AlertIntake.submit`` (dedup verdict, counted; card
rendered; written to the ``Outbox`` with the dedup state in one transaction) ->
``TelegramSender`` (its own task: claim the oldest card, send, mark sent/dead).

Modules: ``cards`` (pure rendering), ``dedup`` (pure suppression and counting),
``outbox`` (SQLite queue), ``pacing`` (token buckets, backoff), ``telegram`` (the Bot API
seam and the sender), ``intake`` (producer side), ``config``, ``service`` (wiring).
"""

from watcher.alerts.cards import render
from watcher.alerts.config import AlertsConfig, TokenUnavailable, resolve_token
from watcher.alerts.dedup import Deduplicator, DedupPolicy, SuppressionReason, Verdict
from watcher.alerts.intake import AlertIntake
from watcher.alerts.outbox import Card, Outbox
from watcher.alerts.pacing import Backoff, ChatRateLimit, TokenBucket
from watcher.alerts.secret import Secret
from watcher.alerts.service import AlertService
from watcher.alerts.telegram import BotApi, PtbBotApi, TelegramSender, build_bot, classify_error

__all__ = [
    "AlertIntake",
    "AlertService",
    "AlertsConfig",
    "Backoff",
    "BotApi",
    "Card",
    "ChatRateLimit",
    "DedupPolicy",
    "Deduplicator",
    "Outbox",
    "PtbBotApi",
    "Secret",
    "SuppressionReason",
    "TelegramSender",
    "TokenBucket",
    "TokenUnavailable",
    "Verdict",
    "build_bot",
    "classify_error",
    "render",
    "resolve_token",
]
