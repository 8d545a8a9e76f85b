"""Sources: where gateway log entries come from, delivered in bounded, resumable batches.

Every source turns its input into the same raw ``SourceEntry`` (message, realtime,
position, unit, identifier) and hands them out in ``Batch``es through one async API::

    source = open_source("journal", state_dir=state, units=["openclaw-gateway.service"])
    source.open()                      # SourceError names the fix (group, missing dir)
    async for batch in source.batches():
        for entry in batch.entries:
            record = source.parse(entry)   # injected parser; watcher.parse.lines by default
            ...                            # apply; no alerts when batch.catch_up
        await source.commit(batch)         # atomically persist the position AFTER applying
    source.close()

- ``JournalSource``: the systemd journal (default), fast low-level reads (a C scan loop
  without the GIL when ``_jscan`` is built, read-ahead in a thread during catch-up),
  cursor resume with a realtime fallback, safe across rotation and vacuum, asyncio via
  the journal's fd; a live tail of a still-empty directory waits for its first file.
- ``TextFileSource`` / ``JsonlFileSource``: a file followed like ``tail -F``.
- ``StdinSource``: a pipe, read to its end.  ``ExportSource``: ``journalctl -o export``.
- ``open_source(spec)``: picks one from ``journal``, ``journal:DIR``, ``file:PATH``,
  ``jsonl:PATH``, ``export:PATH``, ``-``, or a bare path to replay.

Knobs shared by all: ``clock`` (epoch seconds, default ``time.time``),
``catch_up_age`` (600 s; ``math.inf`` disables catch-up, e.g. for replay),
``max_batch`` (1,000 entries kept per batch), ``keep`` (byte prefilter, default
``is_relevant``; ``None`` keeps everything), ``parse`` (the parse callable),
``follow``, ``store`` (a ``PositionStore``). Positions are only persisted by
``commit``, so a batch that was not applied is delivered again after a restart, and
one that was is never delivered twice.
"""

from watcher.source._base import Source, SourceStats
from watcher.source._cursor import check_journal_dir, journal_cursor
from watcher.source._export import ExportFormatError, ExportParser, ExportSource
from watcher.source._journal import JournalSource
from watcher.source._lines import JsonlFileSource, StdinSource, TextFileSource
from watcher.source._open import open_source
from watcher.source._position import PositionStore, SavedPosition
from watcher.source._types import (
    DEFAULT_CATCH_UP_AGE,
    DEFAULT_MAX_BATCH,
    RELEVANT_MARKERS,
    Batch,
    SourceEntry,
    SourceError,
    StartAt,
    is_relevant,
)

__all__ = [
    "DEFAULT_CATCH_UP_AGE",
    "DEFAULT_MAX_BATCH",
    "RELEVANT_MARKERS",
    "Batch",
    "ExportFormatError",
    "ExportParser",
    "ExportSource",
    "JournalSource",
    "JsonlFileSource",
    "PositionStore",
    "SavedPosition",
    "Source",
    "SourceEntry",
    "SourceError",
    "SourceStats",
    "StartAt",
    "StdinSource",
    "TextFileSource",
    "check_journal_dir",
    "is_relevant",
    "journal_cursor",
    "open_source",
]
