"""Replay ``journalctl -o export`` output (Journal Export Format) as source entries.

The format: fields as ``NAME=value\\n``, or, for binary-safe values, ``NAME\\n``
followed by a little-endian 64-bit length, the raw bytes and ``\\n``; a blank line ends
an entry. ``__REALTIME_TIMESTAMP`` becomes the entry's realtime (so catch-up applies
as on the live journal), and ``units``/``identifiers`` filter like the journal
source's matches. The position is ``export:<byte offset after the entry>``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from watcher.source._base import BatchAssembler, Source
from watcher.source._types import Batch, SourceEntry, SourceError, decode

READ_SIZE = 1 << 20
MAX_FIELD = 64 << 20  # a larger length prefix is corruption, not data


class ExportFormatError(SourceError):
    """The input is not Journal Export Format (or is truncated inside a field)."""


class ExportParser:
    """Incremental parser: ``feed()`` bytes, then take ``entries()`` as they complete."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._base = 0
        self._fields: dict[str, bytes] = {}

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def feed(self, chunk: bytes) -> None:
        if self._pos:
            self._base += self._pos
            self._buf = self._buf[self._pos:]
            self._pos = 0
        self._buf += chunk

    def entries(self) -> Iterator[tuple[dict[str, bytes], int]]:
        """Complete entries with the stream offset just after each."""
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._pos)
            if nl < 0:
                return
            line = buf[self._pos:nl]
            if not line:
                self._pos = nl + 1
                if self._fields:
                    fields, self._fields = self._fields, {}
                    yield fields, self.offset
                continue
            name, eq, value = line.partition(b"=")
            if eq:
                self._fields[name.decode("ascii", "replace")] = value
                self._pos = nl + 1
                continue
            # Binary-safe field: NAME\n <u64 le length> <data> \n
            start = nl + 1
            if len(buf) < start + 8:
                return
            (size,) = struct.unpack_from("<Q", buf, start)
            if size > MAX_FIELD:
                raise ExportFormatError(
                    f"not journal export format at byte {self.offset}: field "
                    f"{line[:40]!r} claims {size} bytes")
            end = start + 8 + size
            if len(buf) < end + 1:
                return
            self._fields[name.decode("ascii", "replace")] = buf[start + 8:end]
            self._pos = end + 1

    def finish(self) -> Iterator[tuple[dict[str, bytes], int]]:
        """At end of input: an entry not followed by a blank line still counts."""
        if self._pos < len(self._buf):
            self._buf += b"\n"
            yield from self.entries()
        if self._fields:
            fields, self._fields = self._fields, {}
            yield fields, self.offset


class ExportSource(Source):
    """Entries of a ``journalctl -o export`` file (or ``-`` for stdin), for replay."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        stream: IO[bytes] | None = None,
        units: Sequence[str] = (),
        identifiers: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("follow", False)
        super().__init__(**kwargs)
        self.path = Path(path) if path is not None and str(path) != "-" else None
        self.units = {u if "." in u else u + ".service" for u in units}
        self.identifiers = set(identifiers)
        self._stream = stream
        self._parser = ExportParser()
        self._pending: list[tuple[dict[str, bytes], int]] = []
        self._eof = False

    def __repr__(self) -> str:
        return f"ExportSource({self.path or '-'})"

    def open(self) -> None:
        if self._stream is not None:
            return
        if self.path is None:
            self._stream = sys.stdin.buffer
            return
        try:
            self._stream = open(self.path, "rb")  # noqa: SIM115 - held across batches
        except FileNotFoundError as exc:
            raise SourceError(f"export file {self.path} does not exist") from exc
        except PermissionError as exc:
            raise SourceError(f"permission denied reading {self.path}") from exc
        saved = self._saved()
        if saved is not None and saved.position.startswith("export:"):
            offset = int(saved.position[len("export:"):] or 0)
            self._stream.seek(offset)
            self._parser = ExportParser()
            self._parser._base = offset

    def _wanted(self, fields: dict[str, bytes]) -> bool:
        if not self.units and not self.identifiers:
            return True
        unit = fields.get("_SYSTEMD_UNIT", b"").decode("utf-8", "replace")
        ident = fields.get("SYSLOG_IDENTIFIER", b"").decode("utf-8", "replace")
        return unit in self.units or ident in self.identifiers

    def read_batch(self, chunk: bytes | None) -> Batch | None:
        """Assemble a batch from parsed entries; ``chunk`` is new input (b"" at EOF)."""
        if chunk:
            self._parser.feed(chunk)
            self._pending.extend(self._parser.entries())
        elif chunk == b"":
            self._eof = True
            self._pending.extend(self._parser.finish())
        if not self._pending:
            return None
        assembler = BatchAssembler(self._cutoff())
        taken = 0
        position = ""
        realtime: float | None = None
        for fields, end in self._pending:
            if len(assembler.entries) >= self.max_batch:
                break
            rt_text = fields.get("__REALTIME_TIMESTAMP")
            rt = int(rt_text) / 1_000_000 if rt_text and rt_text.isdigit() else None
            message = fields.get("MESSAGE", b"")
            if self._wanted(fields) and (self.keep is None or self.keep(message)):
                entry = SourceEntry(
                    decode(message), rt, f"export:{end}",
                    _text(fields.get("_SYSTEMD_UNIT")), _text(fields.get("SYSLOG_IDENTIFIER")),
                )
                if not assembler.add(entry):
                    break
            taken += 1
            position, realtime = f"export:{end}", rt
        del self._pending[:taken]
        self.stats.scanned += taken
        return Batch(assembler.entries, position, realtime, assembler.catch_up)

    async def _batches(self) -> AsyncIterator[Batch]:
        stream = self._stream
        assert stream is not None
        read = getattr(stream, "read1", stream.read)
        is_file = self.path is not None
        try:
            while not self._closed:
                batch = self.read_batch(None)
                if batch is not None:
                    yield batch
                    continue
                if self._eof:
                    break
                chunk = (read(READ_SIZE) if is_file
                         else await asyncio.to_thread(read, READ_SIZE))
                batch = self.read_batch(chunk)
                if batch is not None:
                    yield batch
        except Exception:
            if is_file:
                stream.close()
            raise
        if is_file:
            stream.close()

    def close(self) -> None:
        super().close()
        if self.path is not None and self._stream is not None:
            self._stream.close()


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def looks_like_export(head: bytes) -> bool:
    """Sniff: export text starts with ``NAME=`` fields and carries a MESSAGE or cursor."""
    first = head.split(b"\n", 1)[0]
    name, eq, _ = first.partition(b"=")
    if not name or not (eq or len(head) > len(first) + 9):
        return False
    if not all(c == 0x5F or 0x41 <= c <= 0x5A or 0x30 <= c <= 0x39 for c in name):
        return False
    return (b"MESSAGE" in head or b"__CURSOR=" in head
            or b"__REALTIME_TIMESTAMP=" in head)
