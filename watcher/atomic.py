"""Crash-safe file replacement: same-dir temp file, fsync, rename, fsync the directory.

After a crash at any point a reader sees either the old file or the new one, never a
torn one. Used for the pin file, the journal cursor, the outbox index and the breaker's
writes of ``openclaw.json``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fully(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(
    path: Path, data: bytes, mode: int = 0o640, *, sync_dir: bool = True
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``sync_dir=False`` leaves the directory fsync to the caller, who must do it after
    a later rename in the same directory (one fsync then covers both renames)."""
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        write_fully(fd, data)
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(directory)


def atomic_write_text(path: Path, text: str, mode: int = 0o640) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)
