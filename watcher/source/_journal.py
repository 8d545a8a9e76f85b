"""Tail the systemd journal with ``systemd.journal.Reader``, fast, resumable, and async.

- Opens ``Reader(path=dir)`` (never ``files=``, which would miss rotated-in files) or
  the local system journal, and ORs ``_SYSTEMD_UNIT=`` / ``SYSLOG_IDENTIFIER=`` matches.
- Reads through ``JournalCursor``, a two-class adapter: the low-level ``_next()`` /
  ``_get('MESSAGE')`` / ``_get_realtime()`` / ``_get_cursor()`` calls (measured about
  10x faster than ``get_next()`` dicts), with the public API as the fallback.
- The byte-level prefilter runs before anything else, so chatter is never decoded
  and its cursor never formatted.
- The scan loop (next, MESSAGE, prefilter, build the kept entries) is
  ``watcher.source._scan``: in C when ``watcher/source/_jscan.c`` was built, else in
  Python. During catch-up the next scan runs in a helper thread while the consumer
  applies the current batch, so reading and deciding use two cores, like
  ``journalctl | grep``. Only one thread touches the reader at a time (``_settle``
  before any other use).
- Asyncio: ``loop.add_reader(reader.fileno())`` wakes the loop; ``process()`` says
  NOP / APPEND / INVALIDATE. On INVALIDATE (rotation, vacuum, files added or
  removed) libsystemd keeps the read location, so reading simply continues: nothing
  lost, nothing twice (``tests/source`` checks it on real files).
- A read that fails (libsystemd returns EBADMSG when the file under the reader and
  the next one were vacuumed) re-opens the journal and resumes after the last entry
  read, exactly as a restart would (below); a second failure in a row is raised.
- Resume: ``seek_cursor`` then step onto that entry and check it with
  ``test_cursor``; it was applied already, so reading continues after it. If it is
  gone (vacuumed, or no longer matching the filters), seek to its saved realtime
  and skip every entry at or before it. Entries vacuumed before they were read are
  gone for every reader; everything still on disk is delivered once.
- First start without a saved cursor: ``start_at`` = ``tail`` (default; only entries
  appended from now on), ``head``, or ``since:<duration>``.
- A live tail of a directory with no journal files yet (the gateway never logged)
  waits for the first file and reads it from its start; replaying an empty
  directory, or a directory that does not exist, is an error naming the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from watcher.source._base import BatchAssembler, Source
from watcher.source._cursor import (
    EMPTY_DIR_WARNING,
    GROUP_FIX,
    SYSTEM_JOURNAL_DIRS,
    JournalCursor,
    PublicJournalCursor,
    _journal_files,
    _journal_module,
    _unit_name,
    _user,
    check_journal_dir,
    journal_cursor,
)
from watcher.source._position import SavedPosition
from watcher.source._scan import NATIVE_AVAILABLE, Scan, scan_native, scan_python
from watcher.source._types import (
    DEFAULT_MAX_SCAN,
    Batch,
    SourceEntry,
    SourceError,
    StartAt,
    is_relevant,
)

log = logging.getLogger("watcher.source.journal")

class JournalSource(Source):
    """The default source: the gateway's entries in the systemd journal.

    ``path`` is a journal directory (``None``: the local system journal). ``units``
    and ``identifiers`` are ORed; with neither, every entry is read. ``max_scan``
    bounds the entries read per batch including prefiltered ones, ``max_batch`` the
    entries kept. ``idle_poll`` is a safety re-check when no inotify event arrives.

    ``native`` (default on) uses the C scan loop (``watcher.source._jscan``) when it is
    built and the prefilter is the default one (or none): the loop runs without the
    GIL, and during catch-up the next scan runs in a helper thread while the consumer
    applies the current batch. ``scanner`` says which loop is in use (``"c"`` or
    ``"python"``); both deliver the same entries, positions and batches.

    A live tail (``follow``) of a directory with no journal files yet waits for the
    first one (checking every ``empty_poll`` seconds) and reads it from its start:
    everything in it was written after the source opened.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        units: Sequence[str] = (),
        identifiers: Sequence[str] = (),
        start_at: str | StartAt = "tail",
        max_scan: int = DEFAULT_MAX_SCAN,
        fast: bool = True,
        native: bool = True,
        idle_poll: float = 1.0,
        empty_poll: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path) if path is not None else None
        self.units = tuple(_unit_name(u) for u in units)
        self.identifiers = tuple(identifiers)
        self.start_at = start_at if isinstance(start_at, StartAt) else StartAt.parse(start_at)
        self.max_scan = max(max_scan, self.max_batch)
        self.fast = fast
        self.native = native
        self.idle_poll = idle_poll
        self.empty_poll = empty_poll
        self.resumed_by: str | None = None  # "cursor" | "realtime" | "start_at", for logs/tests
        self.scanner: str | None = None  # "c" | "python" once open
        self._reader: Any = None
        self._cur: JournalCursor | PublicJournalCursor | None = None
        self._waiting_for_files = False
        self._skip_until_us: int | None = None
        self._pending: deque[SourceEntry] = deque()
        self._pending_end: tuple[str, float] | None = None
        self._last_full = False
        # The read-ahead scan running in the helper thread. Module rule: nothing else
        # touches the reader until it is settled (``_settle``), so libsystemd only ever
        # sees one thread at a time.
        self._inflight: Future[Scan] | None = None
        self._helper: ThreadPoolExecutor | None = None
        self._generation = 0  # the live ``_batches`` iteration; older ones clean up nothing
        self._iterating = False
        self.on_release: Callable[[], None] | None = None  # e.g. remove a temporary dir

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "system journal"
        return f"JournalSource({where}, units={self.units}, identifiers={self.identifiers})"

    # -- opening ---------------------------------------------------------------------
    def open(self) -> None:
        if self._reader is not None or self._waiting_for_files:
            return
        _journal_module()
        if self.path is not None and not check_journal_dir(self.path, allow_empty=self.follow):
            log.warning(EMPTY_DIR_WARNING, self.path)
            self._waiting_for_files = True
            return
        self._open_reader(empty_at_start=False)

    def _open_late(self) -> bool:
        """While waiting for the first journal file: open the reader once one exists."""
        assert self.path is not None
        if not _journal_files(self.path):
            return False
        check_journal_dir(self.path)  # the files appeared: are they readable?
        self._waiting_for_files = False
        log.info("journal files appeared in %s: reading them from their start", self.path)
        self._open_reader(empty_at_start=True)
        return True

    def _open_reader(self, *, empty_at_start: bool,
                     saved: SavedPosition | None = None) -> None:
        journal = _journal_module()
        try:
            reader = (journal.Reader(path=str(self.path)) if self.path is not None
                      else journal.Reader())
        except OSError as exc:
            where = self.path or "the system journal"
            fix = GROUP_FIX.format(user=_user())
            raise SourceError(f"cannot open {where}: {exc.strerror or exc}: {fix}") from exc
        if self.path is None and not (reader.has_runtime_files()
                                      or reader.has_persistent_files()):
            reader.close()
            if not any(_journal_files(Path(d)) for d in SYSTEM_JOURNAL_DIRS):
                raise SourceError(
                    "there is no system journal on this machine (no journal files in "
                    f"{' or '.join(SYSTEM_JOURNAL_DIRS)}): is systemd-journald running?"
                )
            raise SourceError(
                f"no system journal files are readable by user {_user()}: "
                + GROUP_FIX.format(user=_user())
            )
        self._add_matches(reader)
        self._reader = reader
        self._cur = journal_cursor(reader, self.fast)
        native_ok = (NATIVE_AVAILABLE and self.native and isinstance(self._cur, JournalCursor)
                     and (self.keep is is_relevant or self.keep is None))
        self.scanner = "c" if native_ok else "python"
        self._seek_start(empty_at_start, saved)

    def _add_matches(self, reader: Any) -> None:
        groups = [[f"_SYSTEMD_UNIT={u}" for u in self.units],
                  [f"SYSLOG_IDENTIFIER={i}" for i in self.identifiers]]
        first = True
        for group in groups:
            if not group:
                continue
            if not first:
                reader.add_disjunction()
            for match in group:  # same field: libsystemd ORs them
                reader.add_match(match)
            first = False

    def _seek_start(self, empty_at_start: bool = False,
                    saved: SavedPosition | None = None) -> None:
        reader, cur = self._reader, self._cur
        assert cur is not None
        saved = saved if saved is not None else self._saved()
        if saved is not None:
            found = False
            try:
                reader.seek_cursor(saved.position)
                found = bool(cur.next()) and bool(reader.test_cursor(saved.position))
            except (ValueError, OSError):
                found = False
            if found:
                # On the applied entry: the next read returns the one after it.
                self.resumed_by = "cursor"
                return
            if saved.realtime is not None:
                log.warning(
                    "saved journal cursor not found (vacuumed, or filters changed); "
                    "resuming after its time %.6f", saved.realtime)
                self._skip_until_us = round(saved.realtime * 1_000_000)
                reader.seek_realtime(self._skip_until_us)
                self.resumed_by = "realtime"
                return
            log.warning("saved journal cursor not found and no time saved; using start_at")
        self.resumed_by = "start_at"
        mode = self.start_at.mode
        if mode == "head" or (mode == "tail" and empty_at_start):
            # Files that appeared after the source opened hold only new entries.
            reader.seek_head()
        elif mode == "since":
            reader.seek_realtime(round((self.clock() - self.start_at.since_seconds) * 1e6))
        else:
            # seek_tail() then one step back: on the last entry, so reading yields only
            # entries appended from now on (a bare next() after seek_tail() would
            # return the last existing entry again).
            reader.seek_tail()
            cur.previous()

    # -- reading ---------------------------------------------------------------------
    def read_batch(self) -> Batch | None:
        """Read one bounded batch synchronously; ``None`` when nothing new was read."""
        self._settle()
        if self._reader is None and not (self._waiting_for_files and self._open_late()):
            return None
        if not self._pending:
            try:
                scan = self._scan()
            except OSError as exc:
                scan = self._recover(exc)
            if not scan.scanned:
                return None
            self._accept(scan)
        return self._assemble()

    def _scan(self) -> Scan:
        """One pass of the scan loop: the C one when available, else the Python one.

        Touches only the reader, never the source's other state, so it may run in the
        helper thread while the consumer works (``_accept`` applies the result)."""
        with_fields = bool(self.units or self.identifiers)
        if self.scanner == "c":
            return scan_native(self._reader, self.keep is is_relevant, self._skip_until_us,
                               self.max_scan, self.max_batch, with_fields)
        assert self._cur is not None, "open() first"
        return scan_python(self._cur, self.keep, self._skip_until_us,
                           self.max_scan, self.max_batch, with_fields)

    def _settle(self) -> Scan | None:
        """Wait for the read-ahead scan, if any, and queue what it read.

        Blocks for at most one bounded scan. Called before anything else touches the
        reader: a consumer may abandon an iteration mid-scan and start another one."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return None
        try:
            scan = inflight.result()
        except OSError as exc:
            scan = self._recover(exc)
        self._accept(scan)
        return scan

    def _recover(self, exc: OSError) -> Scan:
        """A read failed (e.g. EBADMSG after the file under the reader was vacuumed):
        re-open the journal and go on after the last entry read, by cursor or, when
        that entry is gone too, by its time. A second failure in a row is raised."""
        log.warning("reading the journal failed (%s); re-opening it after the last "
                    "entry read", exc.strerror or exc)
        end = self._pending_end
        saved = (SavedPosition(end[0], end[1], "journal") if end is not None else None)
        self._close_reader()  # the entries already scanned stay pending: they were read
        self._open_reader(empty_at_start=False, saved=saved)
        return self._scan()  # raises again if the journal is still unreadable

    def _read_ahead(self) -> None:
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="journal-scan")
        self._inflight = self._helper.submit(self._scan)

    def _accept(self, scan: Scan) -> None:
        """Queue a scan's entries; its end position is committed once they are all out."""
        self._skip_until_us = scan.skip_until_us
        self._last_full = scan.full
        if not scan.scanned:
            return
        self.stats.scanned += scan.scanned
        self._pending.extend(scan.entries)
        assert scan.end_position is not None
        self._pending_end = (scan.end_position, scan.end_realtime_us / 1_000_000)

    def _assemble(self) -> Batch:
        """The next batch from the queued entries: bounded, never mixing catch-up and live.

        Its position is the last entry read (kept or not) when the queue empties, else
        the last entry in the batch, so a commit never skips an entry not yet applied."""
        assembler = BatchAssembler(self._cutoff())
        entries = assembler.entries
        pending, max_batch = self._pending, self.max_batch
        while pending and len(entries) < max_batch:
            if not assembler.add(pending[0]):
                break
            pending.popleft()
        if pending:
            last = entries[-1]
            return Batch(entries, last.position, last.realtime, assembler.catch_up)
        assert self._pending_end is not None
        position, realtime = self._pending_end
        return Batch(entries, position, realtime, assembler.catch_up)

    async def _batches(self) -> AsyncIterator[Batch]:
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        journal = _journal_module()
        fd: int | None = None
        watched: Any = None
        poll = self.idle_poll
        self._generation += 1
        generation = self._generation
        self._iterating = True
        finished = False
        try:
            while not self._closed:
                reader = self._reader
                if reader is None:
                    self._settle()
                    if not (self._waiting_for_files and self._open_late()):
                        if not self._waiting_for_files:  # released under us
                            finished = True
                            return
                        wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), self.empty_poll)
                        continue
                    reader = self._reader
                if fd is not None and reader is not watched:  # re-opened after an error
                    with contextlib.suppress(Exception):
                        loop.remove_reader(fd)
                    fd = None
                if fd is None:
                    fd, watched = reader.fileno(), reader
                    loop.add_reader(fd, wake.set)
                    poll = self.idle_poll if reader.reliable_fd() else min(self.idle_poll, 0.25)
                inflight = self._inflight
                if inflight is not None:
                    await asyncio.wait([asyncio.wrap_future(inflight)])
                    if self._inflight is inflight:
                        scan = self._settle()
                        assert scan is not None
                        batch = self._assemble() if self._pending or scan.scanned else None
                    else:  # another iteration settled it already
                        batch = self.read_batch()
                else:
                    batch = self.read_batch()
                if batch is not None:
                    if self.scanner == "c" and self._last_full and not self._pending:
                        # Catching up: read the next stretch while this batch is applied.
                        self._read_ahead()
                    yield batch
                    continue
                if not self.follow:
                    finished = True
                    return
                if self._reader is not watched:  # re-opened after an error: watch it first
                    continue
                wake.clear()
                state = self._reader.process()
                if state == journal.INVALIDATE:
                    self.stats.invalidations += 1
                    log.debug("journal files added or removed; reading on from the same place")
                if state != journal.NOP:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll)
        finally:
            current = generation == self._generation
            if fd is not None and current:
                with contextlib.suppress(Exception):
                    loop.remove_reader(fd)
            if current:
                self._iterating = False
                # Done or closed: let go of the reader. Merely abandoned (the consumer
                # broke out of its loop): keep it, so another ``batches()`` continues
                # from here (a read-ahead in flight is settled by the next read).
                if finished or self._closed:
                    self._release()

    def close(self) -> None:
        super().close()
        if not self._iterating:
            self._release()
        if self.on_release is not None:
            self.on_release()
            self.on_release = None

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._settle()
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None
        self._waiting_for_files = False
        if self._reader is not None:
            self._close_reader()
            self._pending.clear()
            self._pending_end = None

    def _close_reader(self) -> None:
        self._reader.close()
        self._reader = None
        self._cur = None
        self._skip_until_us = None
