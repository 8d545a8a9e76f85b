"""Crash-safe file replacement: same-dir temp file, fsync, rename, fsync the directory.

After a crash at any point a reader sees either the old file or the new one, never a
torn one. Used for the pin file, the journal cursor, the outbox index and the breaker's
writes of ``openclaw.json``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
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


class OwnershipError(PermissionError):
    """Replacing the file would change who owns it, which this user cannot prevent."""


def keep_ownership(fd: int, path: Path, mode: int) -> int:
    """Give the new file behind ``fd`` the owner, group and mode of the file it replaces
    (of its directory when there is none yet); return the mode to set.

    A rename replaces the inode, so without this a ``pin`` run as root leaves a
    root-owned pin file the service user can no longer read (a crash loop under
    ``Restart=on-failure``), and the gateway's user loses its read access too. Root
    copies owner and group; anyone else must own the file already (or create it) and
    keeps its group when a member of it; otherwise ``OwnershipError``, before any
    change."""
    try:
        st = os.stat(path)
        keep_mode = stat.S_IMODE(st.st_mode)
    except FileNotFoundError:
        st = os.stat(path.parent)
        keep_mode = mode
    if os.geteuid() == 0:
        os.fchown(fd, st.st_uid, st.st_gid)
        return keep_mode
    if st.st_uid != os.geteuid() and path.exists():
        owner = _user_name(st.st_uid)
        raise OwnershipError(
            f"{path} belongs to {owner}; replacing it as {_user_name(os.geteuid())} would "
            f"make it yours and may lock {owner} out. Run this as {owner} "
            f"(sudo -u {owner} ...) or as root, which keeps the owner."
        )
    if st.st_gid != os.getegid():
        with contextlib.suppress(PermissionError):  # not a member: keep our own group
            os.fchown(fd, -1, st.st_gid)
    return keep_mode


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def atomic_write_bytes(
    path: Path, data: bytes, mode: int = 0o640, *, sync_dir: bool = True,
    keep_owner: bool = False,
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``sync_dir=False`` leaves the directory fsync to the caller, who must do it after
    a later rename in the same directory (one fsync then covers both renames).
    ``keep_owner``: the new file keeps the old one's owner, group and mode (see
    ``keep_ownership``); ``OwnershipError`` when it cannot."""
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        if keep_owner:
            mode = keep_ownership(fd, path, mode)
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
