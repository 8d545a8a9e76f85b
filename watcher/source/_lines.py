"""Line sources: a text file followed like ``tail -F``, the OpenClaw JSONL log, and stdin.

- ``TextFileSource`` follows a path, not a file descriptor: when the path gets a new
  inode (rotation by rename, logrotate ``create``) it finishes the old file first,
  then reads the new one from its start; when the file shrinks (``copytruncate``) it
  starts again at offset 0. A missing path is waited for. Its position is
  ``"<inode>:<offset>"``; on restart it resumes at the saved offset when the inode
  still matches, else (the file was rotated while the watcher was down) it reads the
  new file from its start.
- ``JsonlFileSource`` is the same for the OpenClaw JSONL file log; it takes each
  entry's realtime from the record's ``"time"`` so catch-up works, and its entries go
  to ``parse_jsonl``.
- ``StdinSource`` reads a pipe or a redirected file to its end, for ``classify -`` and
  replay. It has no position to save.

Plain text has no timestamps: its entries have ``realtime=None`` and are never
catch-up, and ``start_at=since:...`` reads from the head. Lines longer than
``max_line`` bytes are cut to that prefix (the parser keeps a bounded prefix anyway)
so one hostile line cannot grow memory. Polling (``poll_interval``) stands in for
inotify: stdlib-only and fine for the latency of a file log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from watcher.source._base import BatchAssembler, Source
from watcher.source._types import (
    DEFAULT_MAX_SCAN,
    Batch,
    SourceEntry,
    SourceError,
    StartAt,
    decode,
)

log = logging.getLogger("watcher.source.lines")

DEFAULT_MAX_LINE = 256 * 1024
READ_SIZE = 1 << 20


class LineBuffer:
    """Splits a byte stream into lines, tracking the stream offset after each line."""

    __slots__ = ("base", "buf", "discarding", "max_line", "pos")

    def __init__(self, base: int = 0, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.buf = b""
        self.pos = 0
        self.base = base  # stream offset of buf[0]
        self.max_line = max_line
        self.discarding = False  # inside the tail of an over-long line

    @property
    def offset(self) -> int:
        """Stream offset just after the last line handed out."""
        return self.base + self.pos

    def feed(self, chunk: bytes) -> None:
        if self.pos:
            self.base += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def next_line(self) -> bytes | None:
        """The next complete line (without ``\\n``), or ``None`` when more bytes are needed."""
        while True:
            nl = self.buf.find(b"\n", self.pos)
            if nl < 0:
                if len(self.buf) - self.pos > self.max_line:
                    return self._cut()
                return None
            line = self.buf[self.pos:nl]
            self.pos = nl + 1
            if self.discarding:
                self.discarding = False
                continue
            if len(line) > self.max_line:
                line = line[: self.max_line]
            return line[:-1] if line.endswith(b"\r") else line

    def _cut(self) -> bytes | None:
        line = self.buf[self.pos:self.pos + self.max_line]
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        was_discarding, self.discarding = self.discarding, True
        return None if was_discarding else line

    def take_rest(self) -> bytes | None:
        """At end of input: the unterminated last line, if any."""
        rest = self.buf[self.pos:]
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        discarding, self.discarding = self.discarding, False
        return rest if rest and not discarding else None


_TIME = re.compile(rb'"time"\s*:\s*"([^"]{10,40})"')


def jsonl_realtime(line: bytes) -> float | None:
    """Epoch seconds from a JSONL record's ``"time"`` field, or ``None``."""
    match = _TIME.search(line)
    if match is None:
        return None
    try:
        return datetime.fromisoformat(match.group(1).decode("ascii")).timestamp()
    except (ValueError, UnicodeDecodeError):
        return None


class _LineSource(Source):
    """Shared line handling; subclasses supply the bytes."""

    def __init__(
        self,
        *,
        jsonl: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
        max_scan: int = DEFAULT_MAX_SCAN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kind = "jsonl" if jsonl else "line"
        self.max_line = max_line
        self.max_scan = max(max_scan, self.max_batch)
        self._lines = LineBuffer(0, max_line)
        self._carry: SourceEntry | None = None
        self._skip_before: float | None = None  # JSONL since: drop older records

    def _token(self, offset: int) -> str:
        raise NotImplementedError

    def _entry(self, line: bytes, offset: int) -> SourceEntry | None:
        realtime = jsonl_realtime(line) if self.kind == "jsonl" else None
        if self._skip_before is not None and realtime is not None:
            if realtime < self._skip_before:
                return None
            self._skip_before = None
        return SourceEntry(decode(line), realtime, self._token(offset))

    def _take(self, read: Any, at_end: bool) -> tuple[Batch | None, bool]:
        """Assemble one batch from buffered lines, calling ``read()`` for more bytes.

        Returns the batch (``None`` when nothing was consumed) and whether input ran dry.
        """
        lines, keep = self._lines, self.keep
        assembler = BatchAssembler(self._cutoff())
        entries = assembler.entries
        if self._carry is not None:
            assembler.add(self._carry)
            self._carry = None
        scanned = 0
        dry = False
        split = False
        while scanned < self.max_scan and len(entries) < self.max_batch:
            line = lines.next_line()
            if line is None:
                chunk = read()
                if chunk:
                    lines.feed(chunk)
                    continue
                dry = True
                if at_end:
                    line = lines.take_rest()
                if line is None:
                    break
            scanned += 1
            if keep is not None and not keep(line):
                continue
            entry = self._entry(line, lines.offset)
            if entry is None:
                continue
            if not assembler.add(entry):
                self._carry = entry
                split = True
                break
        self.stats.scanned += scanned
        if not scanned and not entries:
            return None, dry
        if split:
            position, realtime = entries[-1].position, entries[-1].realtime
        else:
            position = self._token(lines.offset)
            realtime = entries[-1].realtime if entries else None
        return Batch(entries, position, realtime, assembler.catch_up), dry


class TextFileSource(_LineSource):
    """Follow a text (or, with ``jsonl=True``, JSONL) log file like ``tail -F``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start_at: str | StartAt = "tail",
        poll_interval: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.start_at = start_at if isinstance(start_at, StartAt) else StartAt.parse(start_at)
        self.poll_interval = poll_interval
        self._file: IO[bytes] | None = None
        self._ino = 0
        self._opened = False
        self._orphan: SourceEntry | None = None  # unterminated last line of a rotated file

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path})"

    def _token(self, offset: int) -> str:
        return f"{self._ino}:{offset}"

    def open(self) -> None:
        if self._opened:
            return
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a directory, not a log file "
                              f"(use journal:{self.path} for a journal directory)")
        if not self.path.exists() and not self.follow:
            raise SourceError(f"log file {self.path} does not exist")
        saved = self._saved()
        if not self._open_file():
            self._opened = True  # follow: wait for the file to appear, read it from 0
            return
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        start = 0
        if saved is not None:
            ino, _, off = saved.position.partition(":")
            if ino == str(self._ino) and off.isdigit() and int(off) <= size:
                start = int(off)
            elif ino == str(self._ino):
                log.warning("%s shrank while the watcher was down; reading it from the start",
                            self.path)
            else:
                log.warning("%s was rotated while the watcher was down; reading the new "
                            "file from its start", self.path)
        elif self.start_at.mode == "tail":
            start = size
        elif self.start_at.mode == "since" and self.kind == "jsonl":
            self._skip_before = self.clock() - self.start_at.since_seconds
        self._file.seek(start)
        self._lines = LineBuffer(start, self.max_line)
        self._opened = True

    def _open_file(self) -> bool:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - held open across batches
        except FileNotFoundError:
            return False
        except PermissionError as exc:
            raise SourceError(
                f"permission denied reading {self.path}: give the watcher's user read "
                f"access (e.g. group membership, or ReadOnlyPaths= in its unit)"
            ) from exc
        self._file = f
        self._ino = os.fstat(f.fileno()).st_ino
        return True

    def _read(self) -> bytes:
        return self._file.read(READ_SIZE) if self._file is not None else b""

    def _follow_path(self) -> bool:
        """At end of the current file: switch on rotation or truncation. True if switched."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # mid-rotation: keep the old file until the new one appears
        if self._file is None:
            if self._open_file():
                self._lines = LineBuffer(0, self.max_line)
                return True
            return False
        current = os.fstat(self._file.fileno())
        if st.st_ino != self._ino:
            self.stats.rotations += 1
            rest = self._lines.take_rest()
            if rest is not None and (self.keep is None or self.keep(rest)):
                self._orphan = self._entry(rest, self._lines.offset)
            self._file.close()
            self._file = None
            if self._open_file():
                self._lines = LineBuffer(0, self.max_line)
            return True
        if current.st_size < self._file.tell():
            self.stats.rotations += 1
            log.info("%s was truncated; reading it from the start", self.path)
            self._file.seek(0)
            self._lines = LineBuffer(0, self.max_line)
            return True
        return False

    def read_batch(self) -> Batch | None:
        """One bounded batch, synchronously; ``None`` when there is nothing new."""
        self.open()
        batch, dry = self._take(self._read, at_end=not self.follow)
        if batch is None and dry and self.follow and self._follow_path():
            orphan, self._orphan = self._orphan, None
            if orphan is not None:
                return Batch([orphan], self._token(0), orphan.realtime,
                             orphan.realtime is not None and orphan.realtime < self._cutoff())
            batch, dry = self._take(self._read, at_end=False)
        return batch

    async def _batches(self) -> AsyncIterator[Batch]:
        wake = self._wake = asyncio.Event()
        finished = False
        try:
            while not self._closed:
                batch = self.read_batch()
                if batch is not None:
                    yield batch
                    continue
                if not self.follow:
                    finished = True
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_interval)
        finally:
            # Done or closed: let go of the file. Merely abandoned (the consumer broke
            # out of its loop): keep it, so another ``batches()`` continues from here.
            if finished or self._closed:
                self._release()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        super().close()
        self._release()


class JsonlFileSource(TextFileSource):
    """The OpenClaw JSONL file log (``logging.file``), followed like ``tail -F``."""

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        kwargs.setdefault("jsonl", True)
        super().__init__(path, **kwargs)


class StdinSource(_LineSource):
    """Lines from a pipe or redirected file (default ``sys.stdin``), read to its end."""

    def __init__(self, stream: IO[bytes] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("follow", False)
        kwargs["store"] = None
        super().__init__(**kwargs)
        self._stream = stream
        self._pending = b""
        self._eof = False

    def __repr__(self) -> str:
        return "StdinSource()"

    def _token(self, offset: int) -> str:
        return f"stdin:{offset}"

    def open(self) -> None:
        if self._stream is None:
            self._stream = sys.stdin.buffer

    def _read_pending(self) -> bytes:
        chunk, self._pending = self._pending, b""
        return chunk

    async def _batches(self) -> AsyncIterator[Batch]:
        stream = self._stream
        assert stream is not None
        read = getattr(stream, "read1", stream.read)
        while not self._closed:
            batch, _ = self._take(self._read_pending, at_end=self._eof)
            if batch is not None:
                yield batch
                continue
            if self._eof:
                return
            chunk = await asyncio.to_thread(read, READ_SIZE)
            if chunk:
                self._pending = chunk
            else:
                self._eof = True
