"""Throttle cooldowns: how long a throttled model stays down, and the decaying level.

A cooldown only ever grows: new evidence can extend it, never shorten it (the
20 May flap needed exactly that). The level counts repeats: a throttle arriving after
the previous cooldown ended, but within ``cooldown_decay_s`` of the last throttle, is
a repeat and doubles the next cooldown; every full clean ``cooldown_decay_s`` since
the last throttle lowers the level by one. A throttle arriving *during* a cooldown
extends it at the current level (the gateway retries up to ten times, so throttles
come in bursts: a burst is one repeat, not ten).
"""

from __future__ import annotations

from typing import NamedTuple

from watcher.core.policy import Policy


class Cooldown(NamedTuple):
    """The outcome of one throttle (a NamedTuple: one is built per throttle, and a
    frozen dataclass's ``__init__`` costs three times as much)."""

    until: float
    level: int
    started: bool  # no cooldown was running before
    escalated: bool  # the level went up


def decayed_level(level: int, last_throttle_at: float | None, at: float, policy: Policy) -> int:
    if level <= 0 or last_throttle_at is None:
        return 0
    clean = max(0.0, at - last_throttle_at)
    return max(0, level - int(clean // policy.cooldown_decay_s))


def duration(level: int, policy: Policy, jitter: float) -> float:
    """``base * factor**level``, capped, then jittered by ±``jitter_fraction``."""
    jitter = max(-1.0, min(1.0, jitter))
    try:
        raw = policy.cooldown_base_s * policy.cooldown_factor**level
    except OverflowError:
        raw = policy.cooldown_cap_s
    return min(raw, policy.cooldown_cap_s) * (1.0 + policy.jitter_fraction * jitter)


def retry_after_end(policy: Policy, at: float, retry_after_s: float | None) -> float | None:
    """When a Retry-After seen at ``at`` lets the model be tried again (clipped to
    ``retry_after_max_s``), or None when there is none to honour."""
    if not policy.honour_retry_after or retry_after_s is None or retry_after_s <= 0:
        return None
    return at + min(retry_after_s, policy.retry_after_max_s)


def next_cooldown(
    *,
    until: float | None,
    level: int,
    last_throttle_at: float | None,
    at: float,
    retry_after_s: float | None,
    policy: Policy,
    jitter: float,
) -> Cooldown:
    """The cooldown after a throttle observed at ``at`` (never earlier than ``until``)."""
    running = until is not None and at < until
    if running:
        new_level = level
    else:
        new_level = decayed_level(level, last_throttle_at, at, policy)
        if last_throttle_at is not None and at - last_throttle_at <= policy.cooldown_decay_s:
            new_level += 1
    end = at + duration(new_level, policy, jitter)
    asked = retry_after_end(policy, at, retry_after_s)
    if asked is not None:
        end = max(end, asked)
    if until is not None:
        end = max(end, until)
    return Cooldown(until=end, level=new_level, started=not running, escalated=new_level > level)
