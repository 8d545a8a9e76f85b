"""Durations as operators type them: ``90s``, ``15m``, ``1h``, ``2d`` (a bare number is seconds)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` naming the accepted forms otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 2d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


MAX_HOLD_S = 7 * 86400.0  # the longest hold, from the CLI and from Telegram alike


def bounded_duration(text: str, *, what: str, maximum: float) -> float:
    """Seconds in ``text``, which must be more than zero and at most ``maximum``;
    ``ValueError`` saying which rule it broke otherwise."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f"bad {what} duration {text!r}: use e.g. 90s, 15m, 2h, 1d") from None
    if seconds <= 0:
        raise ValueError(f"bad {what} duration {text!r}: it must be longer than zero")
    if seconds > maximum:
        raise ValueError(f"bad {what} duration {text!r}: at most {human(maximum)} is allowed")
    return seconds


def human(seconds: float) -> str:
    """``seconds`` the way ``parse_duration`` reads it back: 7d, 2h, 15m, 90s."""
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
