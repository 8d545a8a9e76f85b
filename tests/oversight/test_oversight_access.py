"""Allowlist, rate limit and staleness: pure, with ``now`` passed in."""

from __future__ import annotations

from watcher.oversight.access import Allowlist, RateLimit, is_stale

T0 = 1_790_000_000.0


def test_both_the_user_and_the_chat_must_be_allowlisted() -> None:
    allow = Allowlist(frozenset({42}), frozenset({-100, 42}))
    assert allow.refusal(42, -100) is None
    assert allow.refusal(42, 42) is None  # a private chat with the bot
    assert allow.refusal(666, -100) == "user 666 is not on the allowlist"
    assert allow.refusal(42, -200) == "chat -200 is not an allowed chat"
    assert allow.refusal(None, -100) == "user None is not on the allowlist"


def test_the_rate_limit_allows_a_burst_then_one_action_per_interval_per_user() -> None:
    limit = RateLimit(per_minute=6, burst=2)
    assert limit.take(42, T0) == 0.0
    assert limit.take(42, T0) == 0.0
    assert limit.take(42, T0) == 10.0  # 6 per minute: one token every 10 s
    assert limit.take(7, T0) == 0.0  # another user has their own bucket
    assert limit.take(42, T0 + 5) == 5.0
    assert limit.take(42, T0 + 10) == 0.0
    assert limit.take(42, T0 + 1000) == 0.0 and limit.take(42, T0 + 1000) == 0.0
    assert limit.take(42, T0 + 1000) > 0  # refilled to the burst, not beyond


def test_a_request_is_stale_only_after_its_ttl() -> None:
    assert not is_stale(T0, T0 + 1800, 1800)
    assert is_stale(T0, T0 + 1800.5, 1800)
