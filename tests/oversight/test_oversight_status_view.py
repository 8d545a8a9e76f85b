"""``/status`` for Telegram: the same data as ``status``, valid HTML, within 4096."""

from __future__ import annotations

from typing import Any

from watcher.fakes.botapi import parse_telegram_html
from watcher.oversight.status_view import render_status


def _agent(serving: str, **extra: Any) -> dict[str, Any]:
    base = {
        "primary": "ollama/p",
        "serving": serving,
        "in_fallback": serving != "ollama/p",
        "fallback_since": "2026-05-20T14:00:00Z",
        "failure_class": "throttle",
        "reason": "rate_limit",
        "hold": None,
        "flapping": False,
        "flap_score": 0.0,
        "chain_exhausted": False,
    }
    return {**base, **extra}


def _data(agents: dict[str, Any], keys: int = 1) -> dict[str, Any]:
    key = "FALLBACK_FIRED|a<b>|ollama/p|x/y|throttle"
    return {
        "now": "2026-05-20T14:05:00Z",
        "agents": agents,
        "models": {
            "ollama/p": {
                "failing": True,
                "failure_class": "throttle",
                "since": "2026-05-20T14:00:00Z",
                "cooldown_until": "2026-05-20T14:10:00Z",
                "cooldown_left_s": 300,
                "cooldown_level": 2,
                "probe_streak": 1,
            }
        },
        "alerts": {
            "outbox_depth": 0,
            "outbox_by_state": {},
            "suppressed_last_hour": {key: {"total": 3, "by_reason": {"dedup": 2, "muted": 1}}},
            "muted": {key: "2026-05-20T14:35:00Z"},
            "recent_keys": [{"key": f"{key}{i}", "last_seen": None} for i in range(keys)],
        },
    }


def test_status_shows_agents_fallback_since_cooldowns_flaps_holds_and_mutes() -> None:
    data = _data(
        {
            "a<b>": _agent("x/y", flapping=True, flap_score=72.5),
            "c": _agent("x/z", hold={"by": "telegram:42", "until": None, "note": None}),
            "d": _agent("ollama/p"),
        }
    )
    text = parse_telegram_html(render_status(data))  # valid Telegram HTML
    assert "3 agent(s), 2 in fallback" in text
    assert "a<b> → x/y (FALLBACK since 2026-05-20T14:00:00Z, throttle) 🔁 flapping" in text
    assert "held by telegram:42 until released" in text
    assert "d → ollama/p (primary)" in text
    assert "cooldown 300s left (level 2), probe streak 1" in text
    assert "3 × FALLBACK_FIRED|a<b>|ollama/p|x/y|throttle (dedup 2, muted 1)" in text
    assert "Muted (still counted)" in text
    assert "Recent card keys (for /mute)" in text


def test_a_huge_status_stays_within_telegrams_limit() -> None:
    agents = {f"agent-{i:03d}-" + "n" * 30: _agent("x/" + "m" * 150) for i in range(200)}
    html = render_status(_data(agents, keys=50))
    assert len(html) <= 3900
    text = parse_telegram_html(html)
    assert "more" in text  # rows cut, sections kept
    assert "cooldown 300s left" in text and "Muted (still counted)" in text
