"""The small field readers every line parser shares: bounded text, optional strings
and integers, model refs (memoised), and timestamps read from the text, believed
only in a plausible range. Pure, like the parsers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from watcher.parse.records import ModelRef

UNPARSED_PREFIX_CHARS = 240
"""How much of a line an ``Unparsed`` keeps: enough to recognise it, never a whole blob."""

PLAUSIBLE_TS = (946_684_800.0, 4_102_444_800.0)
"""Timestamps read from the text are believed only between 2000-01-01 and 2100-01-01 UTC.

A line's own timestamp is the gateway's word, and hostile or broken lines lie
(``0001-01-01T00:00:00+01:00``, ``9999-12-31``, a JSON ``time`` of ``1e300``). Outside
this range it is dropped (``ts=None``: the caller's clock stands in), so no later step
has to format a date before year 1 or after year 9999. The journal's own
``__REALTIME_TIMESTAMP`` (``ts=``) is not checked: journald sets it, not the gateway."""

MAX_DETAIL_CHARS = 1024
"""An attempt's error text is kept to this (the plugin already clips it to 300)."""

_ISO_TS = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
)


_CACHED_REF_CHARS = 200


def _ref(text: str) -> ModelRef:
    """``ModelRef.parse``, memoised for refs of a sane length: a fleet has a few dozen
    refs, seen millions of times. A hostile megabyte-long ref is parsed afresh instead
    of being kept alive by the cache (measured: 4,096 refs of 30 KB pinned 117 MiB)."""
    if len(text) <= _CACHED_REF_CHARS:
        return _ref_cached(text)
    return ModelRef.parse(text)


_ref_cached = lru_cache(maxsize=1024)(ModelRef.parse)


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    s = str(value)
    return s[:1024] if s else None


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10**9 else None
    if isinstance(value, str) and value.isdigit() and len(value) <= 9:
        return int(value)
    return None


def _iso_ts(prefix: str) -> float | None:
    """The last ISO-8601 timestamp in the text before the marker (the gateway's own, after
    any journalctl ``short-iso`` prefix). A time without an offset is read as UTC:
    the pure core cannot know the host's zone. ``HH:MM:SS`` alone gives no date: None."""
    if not prefix or "-" not in prefix:
        return None
    # Usual case first: the stamp is the last token before the marker.
    last = prefix.rsplit(None, 1)[-1] if prefix.strip() else ""
    if _ISO_TS.fullmatch(last):
        stamp = last
    else:
        found = _ISO_TS.findall(prefix[-512:])
        if not found:
            return None
        stamp = found[-1]
    try:
        moment = datetime.fromisoformat(stamp.replace(",", "."))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _plausible(moment.timestamp())
    except (ValueError, OverflowError):  # year 1 at +01:00 is before datetime.min in UTC
        return None


def _plausible(ts: float) -> float | None:
    low, high = PLAUSIBLE_TS
    return ts if low <= ts < high else None


def _bounded(text: str) -> str:
    return text[:UNPARSED_PREFIX_CHARS]
