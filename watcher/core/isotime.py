"""``iso`` for the hot path: the same strings as ``watcher.pinfile.iso``, cheaper.

``pinfile.iso`` builds a timezone-aware datetime and runs ``strftime`` (about 2 us);
the core formats a timestamp for routine sentences ("cooldown of X extended to ...",
once per throttle in a burst) and the pin view formats several per agent per batch.
Here the date part is cached per day and the time of day is plain arithmetic. Only
timestamps from 1970 to the end of year 9999 take the fast path; anything else
(negative, huge, NaN) goes to ``pinfile.iso``, so errors are raised exactly as before.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from watcher.pinfile import iso as _slow_iso

_EPOCH = date(1970, 1, 1)
_END = 253_402_300_800  # 10000-01-01T00:00:00Z: datetime's range ends just before


@lru_cache(maxsize=256)
def _day(days: int) -> str:
    return (_EPOCH + timedelta(days=days)).isoformat()


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ``2026-05-20T14:38:00Z`` (None stays None); equals
    ``watcher.pinfile.iso`` for every input."""
    if ts is None:
        return None
    if ts == ts and 0 <= ts < _END:  # not NaN, in range: int() cannot fail
        t = int(ts)
        days, sec = divmod(t, 86_400)
        hours, sec = divmod(sec, 3_600)
        minutes, sec = divmod(sec, 60)
        return f"{_day(days)}T{hours:02d}:{minutes:02d}:{sec:02d}Z"
    return _slow_iso(ts)
