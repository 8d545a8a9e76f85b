"""Who may act, how often, and when a request has gone stale. Pure: ``now`` comes in.

- ``Allowlist``: a user id *and* a chat id must both be listed. Being in an allowed
  group is not enough, and an allowed user in a foreign chat is refused too (anyone can
  add the bot to a chat of their own).
- ``RateLimit``: a token bucket per user for state-changing actions, so a stuck
  client, a replayed button or a compromised account cannot churn the pins.
- ``is_stale``: buttons and commands expire; an old one is refused, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watcher.alerts.pacing import TokenBucket


@dataclass(frozen=True)
class Allowlist:
    user_ids: frozenset[int]
    chat_ids: frozenset[int]

    def refusal(self, user_id: int | None, chat_id: int | None) -> str | None:
        """Why this user in this chat may not act, or None if they may."""
        if user_id is None or user_id not in self.user_ids:
            return f"user {user_id} is not on the allowlist"
        if chat_id is None or chat_id not in self.chat_ids:
            return f"chat {chat_id} is not an allowed chat"
        return None


@dataclass
class RateLimit:
    """``per_minute`` actions per user on average, at most ``burst`` back to back."""

    per_minute: float
    burst: int
    _buckets: dict[int, TokenBucket] = field(default_factory=dict)

    def take(self, user_id: int, now: float) -> float:
        """Spend one action: 0.0 if allowed, else the seconds until one is."""
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(self.per_minute / 60.0, self.burst, now)
        wait = bucket.wait_time(now)
        if wait == 0.0:
            bucket.take(now)
        return wait


def is_stale(issued_at: float, now: float, ttl_s: float) -> bool:
    return now - issued_at > ttl_s
