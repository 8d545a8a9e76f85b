"""Make real ``.journal`` files, one-shot or live, with ``systemd-journal-remote``.

Tests and the demo read real journal files through the real libsystemd, so rotation,
cursors and INVALIDATE behave as on a server. The files come from
``systemd-journal-remote -o <dir>/<name>.journal -`` fed with Journal Export Format
text on its stdin:

- every entry carries ``__REALTIME_TIMESTAMP``, ``__MONOTONIC_TIMESTAMP``,
  ``_BOOT_ID``, ``MESSAGE``, ``_SYSTEMD_UNIT`` and ``SYSLOG_IDENTIFIER``;
- a value that is bytes, not UTF-8, or holds a newline uses the binary-safe form
  (``NAME\\n`` + little-endian u64 length + data + ``\\n``); others ``NAME=value``;
- the monotonic clock is derived from the realtime one under one fixed boot id, so
  entries written by different processes into different files still interleave in
  time order when libsystemd merges them.

journal-remote rules worth knowing: the output name must end in ``.journal``; it
creates the file when the first entry arrives, not at start; it may rotate a full file
to ``<name>@<seqnum-id>-<seqnum>-<realtime>.journal`` and start a new one (readers of
the directory follow that); and it exits when its stdin closes.

- ``write_journal(dir, entries)`` streams any number of entries in one process
  (1M ~300-byte entries took 30.6 s, about 33,000 entries/s, on the 2-core CI box;
  journal-remote itself is most of that; ``bench/tail.py`` caches what it builds).
- ``LiveJournal`` keeps one process running, fed through a pipe: ``append()`` then
  ``flush()`` (which waits until a reader can see the last entry) to test a live tail.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BOOT_ID = "6f0c2c8a4e5b4d2b9a3f1e7d5c9b8a71"
"""The one boot id test entries share (so merged files order by a common clock)."""

MONOTONIC_EPOCH_US = 1_000_000_000_000_000
"""``__MONOTONIC_TIMESTAMP = realtime - this``: a boot that started in 2001."""

DEFAULT_UNIT = "openclaw-gateway.service"
DEFAULT_IDENTIFIER = "openclaw"

_CANDIDATES = (
    "/usr/lib/systemd/systemd-journal-remote",
    "/lib/systemd/systemd-journal-remote",
)


def journal_remote_binary() -> str | None:
    """Path of ``systemd-journal-remote`` (not usually on PATH), or ``None``."""
    found = shutil.which("systemd-journal-remote")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One entry to write. ``realtime`` is epoch seconds; ``None`` lets the writer pick."""

    message: str | bytes
    realtime: float | None = None
    unit: str | None = DEFAULT_UNIT
    identifier: str | None = DEFAULT_IDENTIFIER
    fields: tuple[tuple[str, str | bytes], ...] = ()


def _field(name: str, value: str | bytes) -> bytes:
    if isinstance(value, str):
        if "\n" not in value:
            try:
                return f"{name}={value}\n".encode()
            except UnicodeEncodeError:  # lone surrogates: write the bytes as they come
                value = value.encode("utf-8", "surrogateescape")
        else:
            value = value.encode("utf-8", "surrogateescape")
    return name.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"


def export_entry(entry: JournalEntry, realtime_us: int, boot_id: str = BOOT_ID) -> bytes:
    """One entry in Journal Export Format, terminated by the blank line."""
    head = (
        f"__REALTIME_TIMESTAMP={realtime_us}\n"
        f"__MONOTONIC_TIMESTAMP={realtime_us - MONOTONIC_EPOCH_US}\n"
        f"_BOOT_ID={boot_id}\n"
    ).encode()
    parts = [head]
    if entry.unit is not None:
        parts.append(_field("_SYSTEMD_UNIT", entry.unit))
    if entry.identifier is not None:
        parts.append(_field("SYSLOG_IDENTIFIER", entry.identifier))
    for name, value in entry.fields:
        parts.append(_field(name, value))
    parts.append(_field("MESSAGE", entry.message))
    parts.append(b"\n")
    return b"".join(parts)


class RealtimeClock:
    """Hands out strictly increasing microsecond timestamps.

    An explicit realtime is kept unless it would go backwards; a missing one is the
    previous plus 1 µs, starting at ``start`` (default: the time of the first stamp).
    """

    def __init__(self, start: float | None = None) -> None:
        self._start = start
        self._last: int | None = None

    def stamp(self, realtime: float | None) -> int:
        if realtime is not None:
            us = round(realtime * 1_000_000)
        elif self._last is not None:
            us = self._last + 1
        else:
            us = round((time.time() if self._start is None else self._start) * 1_000_000)
        if self._last is not None:
            us = max(us, self._last + 1)
        self._last = us
        return us


def _as_entry(item: JournalEntry | str | bytes) -> JournalEntry:
    return item if isinstance(item, JournalEntry) else JournalEntry(item)


def export_stream(
    entries: Iterable[JournalEntry | str | bytes],
    *,
    start: float | None = None,
    boot_id: str = BOOT_ID,
    chunk_entries: int = 4096,
) -> Iterator[bytes]:
    """Export-format chunks for ``entries``; missing realtimes count up from ``start``."""
    clock = RealtimeClock(start)
    chunk: list[bytes] = []
    for item in entries:
        entry = _as_entry(item)
        chunk.append(export_entry(entry, clock.stamp(entry.realtime), boot_id))
        if len(chunk) >= chunk_entries:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def write_export(path: Path, entries: Iterable[JournalEntry | str | bytes], **kw: object) -> Path:
    """Write ``entries`` as a ``journalctl -o export`` file (for the export source)."""
    with open(path, "wb") as out:
        for chunk in export_stream(entries, **kw):  # type: ignore[arg-type]
            out.write(chunk)
    return Path(path)


class JournalWriterError(RuntimeError):
    """systemd-journal-remote failed or is missing."""


def _require_binary() -> str:
    binary = journal_remote_binary()
    if binary is None:
        raise JournalWriterError(
            "systemd-journal-remote is not installed (Debian: apt-get install "
            "systemd-journal-remote; it lives in /usr/lib/systemd/)"
        )
    return binary


def _output_path(directory: Path, name: str) -> Path:
    if not name.endswith(".journal"):
        raise ValueError(f"journal-remote output names must end in .journal, not {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def write_journal(
    directory: Path,
    entries: Iterable[JournalEntry | str | bytes],
    *,
    name: str = "x.journal",
    start: float | None = None,
    boot_id: str = BOOT_ID,
) -> Path:
    """Write ``entries`` into ``directory/name`` in one journal-remote run; return the file.

    Plain strings become messages of ``openclaw-gateway.service``. Entries without a
    realtime get consecutive microseconds from ``start`` (default: now). The export
    text is streamed to the process's stdin, so memory stays flat for any count.
    Appending to an existing file works: journal-remote opens it and continues.
    """
    binary = _require_binary()
    out = _output_path(directory, name)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [binary, "-o", str(out), "-"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=err,
        )
        assert proc.stdin is not None
        try:
            for chunk in export_stream(entries, start=start, boot_id=boot_id):
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        finally:
            code = proc.wait()
        if code != 0:
            err.seek(0)
            raise JournalWriterError(
                f"systemd-journal-remote exited {code}: {err.read().decode(errors='replace')}"
            )
    return out


@dataclass
class LiveJournal:
    """A long-lived ``systemd-journal-remote`` writing ``directory/name``, fed by a pipe.

    ``append()`` writes entries into the pipe (realtimes default to now, strictly
    increasing); ``flush()`` pushes the pipe and waits until a journal reader sees the
    last appended entry, so a test knows the data is in the file. Use as a context
    manager, or call ``close()``: journal-remote exits when its stdin closes.
    """

    directory: Path
    name: str = "live.journal"
    boot_id: str = BOOT_ID
    appended: int = 0
    path: Path = field(init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _clock: RealtimeClock = field(default_factory=RealtimeClock, repr=False)
    _last_us: int | None = field(default=None, repr=False)
    _err: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        binary = _require_binary()
        self.path = _output_path(self.directory, self.name)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [binary, "-o", str(self.path), "-"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=self._err,
        )

    def __enter__(self) -> LiveJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(
        self,
        message: str | bytes | JournalEntry,
        *,
        realtime: float | None = None,
        unit: str | None = DEFAULT_UNIT,
        identifier: str | None = DEFAULT_IDENTIFIER,
    ) -> int:
        """Queue one entry; returns its realtime in microseconds."""
        entry = (message if isinstance(message, JournalEntry)
                 else JournalEntry(message, realtime, unit, identifier))
        proc = self._running()
        us = self._clock.stamp(entry.realtime if entry.realtime is not None
                               else time.time())
        assert proc.stdin is not None
        proc.stdin.write(export_entry(entry, us, self.boot_id))
        self._last_us = us
        self.appended += 1
        return us

    def extend(self, messages: Iterable[str | bytes | JournalEntry]) -> None:
        for message in messages:
            self.append(message)

    def push(self) -> None:
        """Hand queued entries to journal-remote now, without waiting to see them land
        (a live feed, like a process's output reaching journald)."""
        proc = self._running()
        assert proc.stdin is not None
        proc.stdin.flush()

    def flush(self, timeout: float = 10.0) -> None:
        """Push queued entries and wait until the last one is readable in the file."""
        proc = self._running()
        assert proc.stdin is not None
        proc.stdin.flush()
        if self._last_us is None:
            return
        journal: Any = importlib.import_module("systemd.journal")

        deadline = time.monotonic() + timeout
        while True:
            if self.path.exists():
                with journal.Reader(path=str(self.directory)) as reader:
                    reader.seek_tail()
                    if reader._previous() and reader._get_realtime() >= self._last_us:
                        return
            if proc.poll() is not None:
                raise JournalWriterError(f"systemd-journal-remote died: {self._stderr()}")
            if time.monotonic() > deadline:
                raise JournalWriterError(
                    f"entries not visible in {self.path} after {timeout}s: {self._stderr()}")
            time.sleep(0.002)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(BrokenPipeError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._err is not None:
            self._err.close()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise JournalWriterError("this LiveJournal is closed")
        return self._proc

    def _stderr(self) -> str:
        if self._err is None:
            return ""
        self._err.seek(0)
        return self._err.read().decode(errors="replace")[-2000:]
