"""Policy validation, cooldown arithmetic and flap scoring."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from watcher.core.cooldown import decayed_level, duration, next_cooldown
from watcher.core.flap import prune, score
from watcher.core.policy import Policy

T = 1_000_000.0


def test_defaults_are_the_documented_ones() -> None:
    p = Policy()
    assert (p.rise, p.cooldown_base_s, p.cooldown_factor, p.cooldown_cap_s) == (2, 300, 2, 3600)
    assert (p.jitter_fraction, p.traffic_rule, p.cooldown, p.flap_detection) == (
        0.1,
        True,
        True,
        True,
    )
    naive = Policy.naive()
    assert (naive.rise, naive.cooldown, naive.traffic_rule, naive.flap_detection) == (
        2,
        False,
        False,
        False,
    )


def test_bad_policy_lists_every_problem() -> None:
    with pytest.raises(ValidationError) as err:
        Policy(flap_low_pct=60, flap_high_pct=50, cooldown_base_s=7200)
    text = str(err.value)
    assert "dead band" in text and "exceeds cooldown_cap_s" in text
    with pytest.raises(ValidationError):
        Policy(rise=0)
    with pytest.raises(ValidationError):
        Policy(surprise=1)  # type: ignore[call-arg]


def test_paid_is_decided_by_provider() -> None:
    p = Policy(paid_providers=frozenset({"deepseek"}))
    assert p.is_paid("deepseek/deepseek-v4-flash")
    assert not p.is_paid("ollama/deepseek-v4-flash:cloud")


def test_cooldown_doubles_on_each_repeat_up_to_the_cap() -> None:
    p = Policy()
    assert [duration(level, p, 0.0) for level in range(6)] == [300, 600, 1200, 2400, 3600, 3600]
    assert duration(0, p, 1.0) == pytest.approx(330)
    assert duration(0, p, -1.0) == pytest.approx(270)
    assert duration(0, p, 7.0) == pytest.approx(330)  # jitter is clamped to [-1, 1]
    assert duration(10_000, p, 0.0) == 3600  # no overflow


def test_a_repeat_after_the_cooldown_escalates_and_a_burst_inside_it_extends() -> None:
    p = Policy()
    first = next_cooldown(
        until=None, level=0, last_throttle_at=None, at=T, retry_after_s=None, policy=p, jitter=0.0
    )
    assert (first.until, first.level, first.started, first.escalated) == (T + 300, 0, True, False)
    burst = next_cooldown(
        until=first.until,
        level=0,
        last_throttle_at=T,
        at=T + 100,
        retry_after_s=None,
        policy=p,
        jitter=-1.0,
    )
    assert (burst.until, burst.level, burst.started) == (T + 370, 0, False)
    repeat = next_cooldown(
        until=burst.until,
        level=0,
        last_throttle_at=T + 100,
        at=T + 400,
        retry_after_s=None,
        policy=p,
        jitter=0.0,
    )
    assert (repeat.until, repeat.level, repeat.started, repeat.escalated) == (
        T + 1000,
        1,
        True,
        True,
    )


def test_retry_after_wins_when_longer_and_new_evidence_never_shortens() -> None:
    p = Policy()
    long = next_cooldown(
        until=None, level=0, last_throttle_at=None, at=T, retry_after_s=1800, policy=p, jitter=0.0
    )
    assert long.until == T + 1800
    short = next_cooldown(
        until=long.until,
        level=0,
        last_throttle_at=T,
        at=T + 10,
        retry_after_s=1,
        policy=p,
        jitter=-1.0,
    )
    assert short.until == T + 1800
    absurd = next_cooldown(
        until=None, level=0, last_throttle_at=None, at=T, retry_after_s=10**9, policy=p, jitter=0.0
    )
    assert absurd.until == T + p.retry_after_max_s


def test_the_level_decays_one_step_per_clean_period() -> None:
    p = Policy()
    assert decayed_level(3, T, T + 3599, p) == 3
    assert decayed_level(3, T, T + 3600, p) == 2
    assert decayed_level(3, T, T + 3 * 3600, p) == 0
    after_quiet = next_cooldown(
        until=T + 2400,
        level=3,
        last_throttle_at=T,
        at=T + 2 * 3600 + 5,
        retry_after_s=None,
        policy=p,
        jitter=0.0,
    )
    assert after_quiet.level == 1 and not after_quiet.escalated


def test_flap_score_weighs_recent_changes_more_and_decays() -> None:
    p = Policy()
    assert score((), T, p) == 0
    assert score((T,), T, p) == pytest.approx(12.0)
    assert score((T - 3599.99,), T, p) == pytest.approx(8.0, abs=0.01)
    five = tuple(T - i for i in range(5))
    assert score(five, T, p) >= p.flap_high_pct
    assert score(five, T + 3600, p) == 0
    assert score(tuple(T for _ in range(50)), T, p) == 100.0
    assert prune((T - 4000, T - 10, T), T, p) == (T - 10, T)
    assert len(prune(tuple(T + i for i in range(100)), T + 100, p)) == 64
