"""The one writer of ``openclaw.json``: read, edit, validate, back up, compare-and-set, replace.

Write discipline, in order, for every change:

1. Read the file's bytes and remember their SHA-256.
2. Edit the text (``watcher.breaker.cut``), which validates the result with the
   watcher's own chain reader; an invalid result raises and nothing is written.
3. Dry run: return the unified diff and stop.
4. Back up the bytes that were read to ``openclaw.json.breaker-<UTC timestamp>.bak``
   (``...comments-dropped.bak`` when the new text could not keep the operator's comments
   and formatting), keeping the newest ``backups_keep``.
5. Write the new text to a temp file in the same directory (mode, and group/owner when
   permitted, copied from the original), fsync it.
6. Compare-and-set: read the file again. If its hash is not the one from step 1 the
   operator (or the gateway) wrote it meanwhile: drop the temp file, and start over from
   step 1 with the new content, at most ``cas_retries`` more times; then give up with
   ``ConcurrentEditError``. A concurrent edit is never overwritten.
7. Rename over the file and fsync the directory (``watcher.support.atomic.fsync_dir``).

The window left between the check in step 6 and the rename is a few microseconds; the
gateway's own writes and an operator's editor do not take a lock we could share.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from watcher.breaker.cut import CutError, Edited
from watcher.gateway.chains import GatewayConfigError, parse_gateway_config
from watcher.support.atomic import fsync_dir

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKUP_MARK = ".breaker-"


class ConfigWriteError(Exception):
    """The file could not be read or written, or the edit was invalid: nothing written."""


class ConcurrentEditError(ConfigWriteError):
    """The file kept changing under the breaker; it gave up rather than overwrite."""


@dataclass(frozen=True)
class WriteOutcome(Generic[T]):
    written: bool
    info: T
    attempts: int
    diff: str  # unified diff of the change ("" when nothing changed)
    backup: Path | None = None
    sha256: str | None = None  # of the text now in the file (when written)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unified_diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} (breaker)",
        )
    )


class ConfigWriter:
    """Compare-and-set writes of one file, with rotating backups next to it."""

    def __init__(
        self,
        path: Path,
        *,
        backups_keep: int = 10,
        cas_retries: int = 3,
        clock: Callable[[], float] = time.time,
        before_replace: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(os.path.realpath(path))  # a symlinked config is edited where it lives
        self.backups_keep = backups_keep
        self.cas_retries = cas_retries
        self.clock = clock
        # A test seam: runs after the temp file is durable and before the compare-and-set
        # check, which is where a concurrent edit must be caught.
        self.before_replace = before_replace

    def read(self) -> tuple[bytes, str]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigWriteError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        try:
            return data, data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigWriteError(f"{self.path} is not UTF-8 text: {exc}") from exc

    def apply(
        self,
        edit: Callable[[str], tuple[Edited, T]],
        *,
        dry_run: bool = False,
        prepare: Callable[[T, str], None] | None = None,
    ) -> WriteOutcome[T]:
        """Edit the file with ``edit(text) -> (Edited, info)`` under compare-and-set.

        ``prepare(info, new_sha256)`` runs right before the new file is put in place, so
        the caller can record its intent durably first (a crash after the rename then
        leaves a record of what was removed).
        """
        attempts = 0
        while True:
            attempts += 1
            data, text = self.read()
            try:
                edited, info = edit(text)
            except CutError as exc:
                raise ConfigWriteError(f"{self.path}: {exc}; nothing was written") from exc
            if edited.changed:
                try:  # the edit validates its own result; this is the last line of defence
                    parse_gateway_config(edited.text)
                except GatewayConfigError as exc:
                    raise ConfigWriteError(
                        f"{self.path}: the edit would leave an invalid config ({exc}); "
                        f"nothing was written"
                    ) from exc
            diff = unified_diff(text, edited.text, self.path) if edited.changed else ""
            if dry_run or not edited.changed:
                return WriteOutcome(False, info, attempts, diff)
            new = edited.text.encode("utf-8")
            backup = self._replace_if_unchanged(data, new, edited, info, prepare)
            if backup is not None:
                self._prune_backups()
                return WriteOutcome(True, info, attempts, diff, backup, sha256(new))
            if attempts > self.cas_retries:
                raise ConcurrentEditError(
                    f"{self.path} changed while the breaker was writing it, {attempts} times "
                    f"in a row; gave up without writing (the concurrent edit is kept)"
                )
            log.warning("%s changed while writing; re-reading (attempt %d)", self.path, attempts)

    def _replace_if_unchanged(
        self,
        old: bytes,
        new: bytes,
        edited: Edited,
        info: T,
        prepare: Callable[[T, str], None] | None,
    ) -> Path | None:
        """The backup made, or ``None`` when the file changed under us (nothing written)."""
        directory = self.path.parent
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise ConfigWriteError(f"cannot stat {self.path}: {exc.strerror or exc}") from exc
        mode = st.st_mode & 0o7777
        tmp = directory / f".{self.path.name}.breaker-tmp-{os.getpid()}-{threading.get_ident()}"
        backup: Path | None = None
        try:
            backup = self._backup(old, mode, comments_dropped=not edited.preserves_comments)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(new)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, mode)
                for uid, gid in ((-1, st.st_gid), (st.st_uid, -1)):  # keep who can read it
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, uid, gid)
                os.fsync(fd)
            finally:
                os.close(fd)
            if self.before_replace is not None:
                self.before_replace()
            try:
                current = self.path.read_bytes()
            except OSError as exc:
                raise ConfigWriteError(
                    f"cannot re-read {self.path}: {exc.strerror or exc}"
                ) from exc
            if current != old:
                os.unlink(tmp)
                os.unlink(backup)
                return None
            if prepare is not None:
                prepare(info, sha256(new))
            os.replace(tmp, self.path)
            fsync_dir(directory)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise ConfigWriteError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return backup

    def backup_name(self, now: float, *, comments_dropped: bool) -> Path:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        tail = ".comments-dropped.bak" if comments_dropped else ".bak"
        return self.path.with_name(f"{self.path.name}{BACKUP_MARK}{stamp}{tail}")

    def _backup(self, data: bytes, mode: int, *, comments_dropped: bool) -> Path:
        path = self.backup_name(self.clock(), comments_dropped=comments_dropped)
        n = 1
        while path.exists():  # two writes in the same microsecond: keep both
            path = path.with_name(f"{path.name}.{n}")
            n += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)  # it holds the same secrets as the original
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def backups(self) -> list[Path]:
        """The breaker's backups of this file, oldest first (the timestamp sorts them)."""
        prefix = f"{self.path.name}{BACKUP_MARK}"
        return sorted(
            p for p in self.path.parent.iterdir()
            if p.name.startswith(prefix) and ".bak" in p.name
        )

    def _prune_backups(self) -> None:
        for old in self.backups()[: -self.backups_keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
