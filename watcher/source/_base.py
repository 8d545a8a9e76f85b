"""What every source shares: the async batch protocol, commit, catch-up and parse binding.

The daemon-facing API, identical for every source::

    source.open()                      # raises SourceError with the fix, before READY=1
    async for batch in source.batches():
        for entry in batch.entries:
            record = source.parse(entry)   # the injected parser, called the right way
            ...apply (silently when batch.catch_up)...
        await source.commit(batch)     # persist the position AFTER applying
    source.close()

Commit happens after apply, so a crash between the two replays the batch instead of
losing it; the journal source resumes after the committed entry, never at it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from watcher.source._position import PositionStore, SavedPosition
from watcher.source._types import (
    DEFAULT_CATCH_UP_AGE,
    DEFAULT_MAX_BATCH,
    Batch,
    Clock,
    Keep,
    ParseFn,
    SourceEntry,
    default_clock,
    is_relevant,
)

log = logging.getLogger("watcher.source")

_DEFAULT_KEEP: Any = object()  # sentinel: "use is_relevant"


@dataclass(slots=True)
class SourceStats:
    """Counters for metrics and the bench (mutable, owned by one source)."""

    scanned: int = 0  # entries or lines read
    delivered: int = 0  # entries handed out in batches
    batches: int = 0
    invalidations: int = 0  # journal INVALIDATE events (rotation, vacuum, files added/removed)
    rotations: int = 0  # file rotations or truncations followed


class BatchAssembler:
    """Collects entries into one batch that never mixes catch-up and live entries."""

    __slots__ = ("catch_up", "cutoff", "entries")

    def __init__(self, cutoff: float) -> None:
        self.cutoff = cutoff
        self.entries: list[SourceEntry] = []
        self.catch_up = False

    def add(self, entry: SourceEntry) -> bool:
        """Append ``entry``; False (not appended) when it would flip the catch-up flag."""
        flag = entry.realtime is not None and entry.realtime < self.cutoff
        if self.entries:
            if flag is not self.catch_up:
                return False
        else:
            self.catch_up = flag
        self.entries.append(entry)
        return True


class Source:
    """Base of every source. Subclasses implement ``open`` and ``_batches``."""

    kind = "line"  # "line": parse_line(message, ts=realtime); "jsonl": parse_jsonl(message)

    def __init__(
        self,
        *,
        store: PositionStore | None = None,
        clock: Clock = default_clock,
        catch_up_age: float = DEFAULT_CATCH_UP_AGE,
        max_batch: int = DEFAULT_MAX_BATCH,
        keep: Keep | None = _DEFAULT_KEEP,
        parse: ParseFn | None = None,
        follow: bool = True,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if catch_up_age < 0:
            raise ValueError("catch_up_age must not be negative")
        self.store = store
        self.clock = clock
        self.catch_up_age = catch_up_age
        self.max_batch = max_batch
        self.keep: Keep | None = is_relevant if keep is _DEFAULT_KEEP else keep
        self.follow = follow
        self.stats = SourceStats()
        self._parse = parse
        self._closed = False
        self._wake: asyncio.Event | None = None

    # -- the daemon-facing API ---------------------------------------------------------
    def open(self) -> None:
        """Open the input and seek to the start position. Raises ``SourceError``."""
        raise NotImplementedError

    async def batches(self) -> AsyncIterator[Batch]:
        """Bounded batches, in order, forever when following, else until the input ends."""
        self.open()
        async for batch in self._batches():
            self.stats.batches += 1
            self.stats.delivered += len(batch.entries)
            yield batch
            if self._closed:
                return
            await asyncio.sleep(0)  # let timers and the sender run between batches

    async def commit(self, batch: Batch) -> None:
        """Persist ``batch.position`` atomically; call it after the batch was applied."""
        if self.store is not None:
            await asyncio.to_thread(self.store.save, batch.position, batch.realtime)

    def commit_sync(self, batch: Batch) -> None:
        """``commit`` for callers outside an event loop (replay, bench)."""
        if self.store is not None:
            self.store.save(batch.position, batch.realtime)

    def parse(self, entry: SourceEntry) -> Any:
        """Run the injected parser (``watcher.parse.lines`` by default) on one entry."""
        fn = self._parse
        if fn is None:
            fn = self._parse = self._default_parser()
        if self.kind == "jsonl":
            return fn(entry.message)
        return fn(entry.message, ts=entry.realtime)

    def close(self) -> None:
        """Stop following; ``batches()`` ends after the batch in hand. Idempotent."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    async def __aenter__(self) -> Source:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses --------------------------------------------------------------
    def _batches(self) -> AsyncIterator[Batch]:
        raise NotImplementedError

    def _saved(self) -> SavedPosition | None:
        return self.store.load() if self.store is not None else None

    def _cutoff(self) -> float:
        return self.clock() - self.catch_up_age

    def _default_parser(self) -> ParseFn:
        # Imported lazily: the sources work, and are tested, without the parser.
        parse_module = importlib.import_module("watcher.parse.lines")
        name = "parse_jsonl" if self.kind == "jsonl" else "parse_line"
        fn: ParseFn = getattr(parse_module, name)
        return fn
