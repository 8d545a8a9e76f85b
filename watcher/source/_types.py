"""The record a source emits, the batch the daemon applies, and the knobs all sources share.

Sources are the imperative edge of the pipeline: they read bytes and hand out raw
``SourceEntry`` objects in bounded ``Batch``es. They never parse; the parse function
is injected (``watcher.parse.lines`` by default, imported lazily) so the delivery machinery
(order, exactly-once, rotation, restart) can be tested on raw messages alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watcher.support.durations import parse_duration

DEFAULT_CATCH_UP_AGE = 600.0
"""Entries older than this (seconds, relative to the source's clock) are history."""

DEFAULT_MAX_BATCH = 1_000
"""At most this many entries per batch, so one batch never stalls the event loop."""

DEFAULT_MAX_SCAN = 16_384
"""At most this many entries read per batch, counting the ones the prefilter drops."""

RELEVANT_MARKERS: tuple[bytes, ...] = (b"fallback", b"lane task error")
"""Byte strings without which no line can parse to a record (see ``watcher.parse.lines``).

The prefilter must accept a superset of what the parser reads, since a line dropped
here never reaches it; these are the parser's own fast-path marks (``fallback``
covers ``[model-fallback/decision]``, ``model fallback chain stopped`` and the JSONL
``model_fallback_decision``). ``tests/source`` checks the two agree.
"""


MARKER_GATE = b"k"
"""One byte every marker contains: a memchr-speed test that rejects most chatter before
the (slower) substring searches. Correct by construction, whatever the chatter."""
assert all(MARKER_GATE in marker for marker in RELEVANT_MARKERS)


def is_relevant(message: bytes) -> bool:
    """The default prefilter: a byte test and two ``in`` tests on raw bytes, no decoding.

    Skipping chatter at the source is what lets the watcher keep up with
    ``journalctl | grep``: 95% of entries are never decoded, copied or parsed.
    """
    return MARKER_GATE in message and (
        b"fallback" in message or b"lane task error" in message  # = RELEVANT_MARKERS
    )


Keep = Callable[[bytes], bool]
"""A byte-level prefilter; ``None`` keeps every entry."""

Clock = Callable[[], float]
"""Returns epoch seconds; ``time.time`` unless a test injects its own."""

ParseFn = Callable[..., Any]
"""``watcher.parse.lines.parse_line(line, *, ts=None)`` or ``parse_jsonl(line)``."""


class SourceError(Exception):
    """The source cannot be read. The message says what is wrong and how to fix it."""


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One journal entry or one log line, raw.

    ``message`` is ``str`` when it decodes as UTF-8 and the original ``bytes`` when it
    does not (the parser turns those into ``Unparsed``). ``realtime`` is epoch seconds
    from the journal's ``__REALTIME_TIMESTAMP`` (or a JSONL record's ``time``), ``None``
    for plain text. ``position`` is the journal cursor, or ``"<inode>:<offset>"`` after
    this line for a file, so resuming from it skips exactly this entry and the ones
    before it.
    """

    message: str | bytes
    realtime: float | None
    position: str
    unit: str | None = None
    identifier: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries to apply together, then ``await source.commit(batch)``.

    ``position``/``realtime`` are what the commit persists: the position of the last
    entry read (which may be a chatter entry the prefilter dropped, so a batch can be
    empty and still move the cursor). ``catch_up`` is true when every entry is older
    than the catch-up age: apply it to state but send no alerts, so a restart never
    re-announces history. A batch never mixes catch-up and live entries.
    """

    entries: list[SourceEntry]
    position: str
    realtime: float | None
    catch_up: bool


def decode(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw




@dataclass(frozen=True, slots=True)
class StartAt:
    """Where a source with no saved position starts: ``tail``, ``head`` or ``since:15m``."""

    mode: str  # "tail" | "head" | "since"
    since_seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> StartAt:
        text = text.strip()
        if text in ("tail", "head"):
            return cls(text)
        if text.startswith("since:"):
            with contextlib.suppress(ValueError):
                return cls("since", parse_duration(text[len("since:"):]))
        raise ValueError(
            f"start_at must be 'tail', 'head' or 'since:<duration>' (like since:15m, "
            f"since:2h, since:90s), not {text!r}"
        )


def default_clock() -> float:
    return time.time()
