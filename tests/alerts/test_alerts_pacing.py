"""Pacing: Telegram's per-chat limits as token buckets, and backoff with jitter."""

from __future__ import annotations

import pytest

from watcher.alerts.pacing import Backoff, ChatRateLimit, TokenBucket


def sends_within(limit: ChatRateLimit, chat: int, seconds: float, step: float = 0.01) -> int:
    now, sent = 0.0, 0
    while now < seconds:
        if limit.wait_time(chat, now) == 0:
            limit.take(chat, now)
            sent += 1
        now += step
    return sent


def test_a_private_chat_gets_one_card_per_second() -> None:
    assert sends_within(ChatRateLimit(), 4242, 10.0) == 10


def test_a_group_gets_at_most_twenty_cards_a_minute_and_one_a_second() -> None:
    limit = ChatRateLimit()
    assert sends_within(limit, -100123, 5.0) == 5  # the 1/s bucket binds first
    assert sends_within(ChatRateLimit(), -100123, 60.0) == 20
    assert sends_within(ChatRateLimit(), -100123, 120.0) == 40


def test_chats_are_paced_independently() -> None:
    limit = ChatRateLimit()
    limit.take(1, 0.0)
    assert limit.wait_time(1, 0.0) == pytest.approx(1.0)
    assert limit.wait_time(2, 0.0) == 0.0


def test_bucket_wait_time_says_when_the_next_token_arrives() -> None:
    bucket = TokenBucket(rate=0.5, capacity=1, now=0.0)
    bucket.take(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(2.0)
    assert bucket.wait_time(1.5) == pytest.approx(0.5)
    assert bucket.wait_time(2.0) == 0.0


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_full() -> None:
    backoff = Backoff(base_s=1.0, max_s=60.0)
    assert [backoff.delay(n, lambda: 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(3, lambda: 0.0) == 2.0
    assert backoff.delay(10_000, lambda: 1.0) == 60.0
