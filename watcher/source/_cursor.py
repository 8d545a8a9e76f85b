"""The journal at the level of one reader: the cursor adapters (the fast
low-level calls, with the public API as the fallback), message cutting, and the
checks that a journal directory exists and is readable, with the fix in the
message. ``watcher.source._journal`` builds the source on top."""


from __future__ import annotations

import contextlib
import getpass
import importlib
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from watcher.parse.lines import MAX_LINE_CHARS
from watcher.source._types import (
    SourceError,
)

log = logging.getLogger("watcher.source.journal")

# The parser never reads past this many bytes of a message (``watcher.parse.lines``: at most
# ``MAX_LINE_CHARS`` characters, and a UTF-8 character is at most 4 bytes), so both scan
# loops cut longer messages here, before decoding: a burst of 1 MiB messages must not
# make a batch of ``max_batch`` entries hold a gigabyte.
MAX_MESSAGE_BYTES = MAX_LINE_CHARS * 4


# Where systemd-journald keeps the system journal: persistent, then volatile.
SYSTEM_JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")

def cut_message(raw: bytes, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """``raw`` cut to at most ``limit`` bytes, backing off (at most 3 bytes) to the
    start of a UTF-8 character so a valid message stays valid (the C loop does the same)."""
    if len(raw) <= limit:
        return raw
    cut = limit
    while cut > limit - 3 and raw[cut] & 0xC0 == 0x80:
        cut -= 1
    return raw[:cut]

GROUP_FIX = (
    "add the watcher's user to group systemd-journal "
    "(`usermod -aG systemd-journal {user}`, or SupplementaryGroups=systemd-journal in "
    "its unit) and restart it"
)


def _journal_module() -> Any:
    try:
        return importlib.import_module("systemd.journal")
    except ImportError as exc:  # pragma: no cover - the package depends on it
        raise SourceError(
            "the systemd-python package is missing: install it into the watcher's venv "
            "(it needs libsystemd-dev, pkg-config and gcc to build)"
        ) from exc


class JournalCursor:
    """Fast adapter: the reader's low-level calls, bound once, no dicts, no conversion."""

    fast = True

    def __init__(self, reader: Any) -> None:
        self.next = reader._next
        self.previous = reader._previous
        self._get = self.get = reader._get  # get(name) -> bytes, KeyError when absent
        self.realtime_us = reader._get_realtime
        self.cursor = reader._get_cursor

    def message(self) -> bytes:
        try:
            value: bytes = self._get("MESSAGE")
        except KeyError:
            return b""
        return value

    def field(self, name: str) -> str | None:
        try:
            value: bytes = self._get(name)
        except KeyError:
            return None
        return value.decode("utf-8", "replace")


class PublicJournalCursor:
    """Fallback adapter over the documented API (``get_next()`` dicts), about 10x slower."""

    fast = False

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._entry: dict[str, Any] = {}

    def next(self) -> bool:
        entry = self._reader.get_next()
        if entry:  # like the low-level reader, stay on the last entry at the end
            self._entry = entry
        return bool(entry)

    def previous(self) -> bool:
        entry = self._reader.get_previous()
        if entry:
            self._entry = entry
        return bool(entry)

    def message(self) -> bytes:
        try:
            return self.get("MESSAGE")
        except KeyError:
            return b""

    def get(self, name: str) -> bytes:
        value = self._entry[name]
        if isinstance(value, list):  # a field repeated in one entry: the public API lists
            value = value[0]
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def realtime_us(self) -> int:
        value = self._entry["__REALTIME_TIMESTAMP"]
        if isinstance(value, datetime):
            return round(value.timestamp() * 1_000_000)
        return int(value)

    def cursor(self) -> str:
        return str(self._entry["__CURSOR"])

    def field(self, name: str) -> str | None:
        value = self._entry.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


_FAST_NAMES = ("_next", "_previous", "_get", "_get_realtime", "_get_cursor")


def journal_cursor(reader: Any, fast: bool = True) -> JournalCursor | PublicJournalCursor:
    """The fast adapter when this systemd-python has the low-level calls, else the public."""
    if fast and all(hasattr(reader, name) for name in _FAST_NAMES):
        return JournalCursor(reader)
    return PublicJournalCursor(reader)


def check_journal_dir(path: Path, *, allow_empty: bool = False) -> bool:
    """Raise ``SourceError`` naming the fix when ``path`` cannot be read as a journal.

    Returns whether journal files were found. With ``allow_empty`` (a live tail), a
    readable directory without journal files yet is not an error: the gateway may
    simply not have logged anything so far.
    """
    user = _user()
    if not path.exists():
        raise SourceError(
            f"journal directory {path} does not exist: create it, or set the journal "
            f"source to the directory holding the gateway's *.journal files "
            f"(usually /var/log/journal, or /run/log/journal without persistent storage)"
        )
    if not path.is_dir():
        raise SourceError(
            f"{path} is not a directory: use journal:<dir> with the directory that holds "
            f"the *.journal files, or `replay {path}` for a single file"
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise SourceError(f"permission denied on journal directory {path}: "
                          + GROUP_FIX.format(user=user))
    files = _journal_files(path)
    if not files:
        if allow_empty:
            return False
        raise SourceError(
            f"journal directory {path} contains no journal files (*.journal): check the "
            f"path, and that journald has Storage=persistent (or use /run/log/journal)"
        )
    readable = [f for f in files if os.access(f, os.R_OK)]
    if not readable:
        raise SourceError(f"permission denied on the journal files in {path}: "
                          + GROUP_FIX.format(user=user))
    return True


EMPTY_DIR_WARNING = (
    "journal directory %s contains no journal files (*.journal) yet: waiting for the "
    "first one. If nothing ever arrives, check the path, and that journald has "
    "Storage=persistent (or use /run/log/journal)"
)


def _journal_files(path: Path) -> list[Path]:
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for child in path.iterdir():
            if child.name.endswith((".journal", ".journal~")) and child.is_file():
                found.append(child)
            elif child.is_dir():  # /var/log/journal/<machine-id>/
                with contextlib.suppress(OSError):
                    found.extend(f for f in child.iterdir()
                                 if f.name.endswith((".journal", ".journal~")))
    return found


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - uid without a passwd entry
        return str(os.getuid())


def _unit_name(unit: str) -> str:
    return unit if "." in unit else unit + ".service"
