"""The journal scan loop, in C and in Python: next entry, MESSAGE, the prefilter, and
the kept entries, bounded per pass.

This loop runs for every journal entry, chatter included, so it is the hot path of
catch-up. ``scan_native`` calls the C loop of ``watcher/source/_jscan.c`` (built by
``setup.py`` when gcc and libsystemd-dev exist) on the Reader's own ``sd_journal``
with the GIL released; ``scan_python`` is the same loop on a ``JournalCursor``.
Both return the same ``Scan`` for the same journal
(``tests/source/test_source_journal_native.py`` holds them to it).

Neither touches anything but the reader it is given, so a scan may run in a helper
thread while the consumer applies the previous batch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watcher.source._cursor import (
    MAX_MESSAGE_BYTES,
    JournalCursor,
    PublicJournalCursor,
    cut_message,
)
from watcher.source._types import (
    MARKER_GATE,
    RELEVANT_MARKERS,
    SourceEntry,
    decode,
    is_relevant,
)

# The optional C scan loop (setup.py builds it when gcc and libsystemd-dev exist). By
# its full name, not ``from watcher.source import _jscan``, which would import the
# package's __init__ (and so every source) from inside one of its modules: a cycle.
_jscan: Any
try:
    _jscan = importlib.import_module("watcher.source._jscan")
except ImportError:  # pragma: no cover - depends on the build
    _jscan = None

NATIVE_AVAILABLE = _jscan is not None


@dataclass(frozen=True, slots=True)
class Scan:
    """What one pass of the scan loop read: the kept entries and where it stopped.

    ``end_position``/``end_realtime_us`` are the cursor and time of the last entry read,
    kept or not (``None``/0 when nothing was read). ``full`` says the pass stopped on a
    bound, not at the end of the journal, so more is probably waiting.
    """

    entries: list[SourceEntry]
    scanned: int
    end_position: str | None
    end_realtime_us: int
    skip_until_us: int | None
    full: bool


def scan_native(
    reader: Any, default_keep: bool, skip_until_us: int | None,
    max_scan: int, max_keep: int, with_fields: bool,
) -> Scan:
    """One pass of the C loop. ``default_keep``: apply the built-in prefilter (the C
    loop knows no other; with a custom one use ``scan_python``)."""
    assert _jscan is not None, "the C scan loop is not built"
    entries, scanned, end, end_us, skip_after = _jscan.scan(
        reader, SourceEntry, max_scan, max_keep, default_keep,
        -1 if skip_until_us is None else skip_until_us, with_fields, MAX_MESSAGE_BYTES)
    return Scan(entries, scanned, end, end_us, None if skip_after < 0 else skip_after,
                scanned >= max_scan or len(entries) >= max_keep)


def scan_python(
    cur: JournalCursor | PublicJournalCursor, keep: Callable[[bytes], bool] | None,
    skip_until_us: int | None, max_scan: int, max_keep: int, with_fields: bool,
) -> Scan:
    """One pass of the Python loop: at most ``max_scan`` entries read, ``max_keep``
    kept; entries at or before ``skip_until_us`` (a resume by time) are passed over."""
    nxt, get, realtime_us, cursor = cur.next, cur.get, cur.realtime_us, cur.cursor
    # The default prefilter, inlined: this loop runs for every journal entry.
    inline = keep is is_relevant
    mark1, mark2 = RELEVANT_MARKERS
    gate = MARKER_GATE
    kept: list[SourceEntry] = []
    scanned = 0
    skip_until = skip_until_us
    for scanned in range(1, max_scan + 1):
        if not nxt():
            scanned -= 1
            break
        if skip_until is not None:
            if realtime_us() <= skip_until:
                continue
            skip_until = None
        try:
            msg = get("MESSAGE")
        except KeyError:
            msg = b""
        if inline:
            if gate not in msg or (mark1 not in msg and mark2 not in msg):
                continue
        elif keep is not None and not keep(msg):
            continue
        if len(msg) > MAX_MESSAGE_BYTES:
            msg = cut_message(msg)
        kept.append(SourceEntry(
            decode(msg), realtime_us() / 1_000_000, cursor(),
            cur.field("_SYSTEMD_UNIT") if with_fields else None,
            cur.field("SYSLOG_IDENTIFIER") if with_fields else None,
        ))
        if len(kept) >= max_keep:
            break
    end, end_us = (cursor(), realtime_us()) if scanned else (None, 0)
    return Scan(kept, scanned, end, end_us, skip_until,
                scanned >= max_scan or len(kept) >= max_keep)
