"""How fast and how often to talk to Telegram: per-chat token buckets and retry backoff.

Pure arithmetic on an injected clock (``now`` arguments) and an injected random source,
so tests drive them without sleeping.

Telegram's limits (Bot API FAQ): about one message per second in a chat, and at most
20 per minute in a group. A private chat gets a token bucket of one token refilled at
1/s. A group gets that bucket and a sliding window of 20 sends per 60 s: a token bucket
alone would allow its capacity *plus* its refill inside one minute (up to 40).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Limit(Protocol):
    def wait_time(self, now: float) -> float: ...

    def take(self, now: float) -> None: ...


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if one is now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1


class SlidingWindow:
    """At most ``count`` takes in any ``window_s`` seconds."""

    def __init__(self, count: int, window_s: float) -> None:
        if count < 1 or window_s <= 0:
            raise ValueError("a sliding window needs count >= 1 and window_s > 0")
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=count)

    def wait_time(self, now: float) -> float:
        if len(self._times) < (self._times.maxlen or 0):
            return 0.0
        return max(0.0, self._times[0] + self.window_s - now)

    def take(self, now: float) -> None:
        self._times.append(now)


class ChatRateLimit:
    """Per-chat pacing: positive chat ids are private chats, negative ones groups."""

    def __init__(self, *, private_per_second: float = 1.0, group_per_minute: float = 20.0) -> None:
        self.private_per_second = private_per_second
        self.group_per_minute = group_per_minute
        self._buckets: dict[int, list[Limit]] = {}

    def _for(self, chat_id: int, now: float) -> list[Limit]:
        buckets = self._buckets.get(chat_id)
        if buckets is None:
            per_second = self.private_per_second
            if chat_id > 0:
                buckets = [TokenBucket(per_second, 1, now)]
            else:
                per_minute = self.group_per_minute
                buckets = [
                    TokenBucket(max(per_second, per_minute / 60.0), 1, now),
                    SlidingWindow(max(int(per_minute), 1), 60.0),
                ]
            self._buckets[chat_id] = buckets
        return buckets

    def wait_time(self, chat_id: int, now: float) -> float:
        return max(b.wait_time(now) for b in self._for(chat_id, now))

    def take(self, chat_id: int, now: float) -> None:
        for bucket in self._for(chat_id, now):
            bucket.take(now)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits base·2^(n-1), capped, times [½, 1]."""

    base_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        raw: float = min(self.max_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), 40))
        return raw * (0.5 + 0.5 * rng())
