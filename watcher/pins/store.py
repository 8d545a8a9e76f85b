"""The pin file on disk: locked read-modify-write, atomic writes, and hand-edit handling.

The pin file is shared three ways: the watcher writes it, the gateway reads it, and a
human may repair it with ``flock <pin>.lock jq ...`` (see ``scripts/pin-edit``). So:

- every read and write happens under ``<pin>.lock``, locked with ``flock(2)``
  (filelock's ``UnixFileLock``), which ``flock(1)`` honours;
- a write replaces the file atomically (same-dir temp file, fsync, rename, fsync the
  directory), mode 0640, so the gateway and a crash only ever see a whole file;
- a caller batches: ``txn.write`` inside one ``locked()`` block is written once, when
  the block ends, and not at all if the bytes would not change;
- every read compares the bytes on disk with what this store last wrote or accepted.
  A difference is a hand edit: a valid one is adopted (the daemon turns it into an
  OPERATOR_OVERRIDE), an invalid one is copied to ``<pin>.rejected-<UTC time>`` (the
  human's text is never lost) and the last good state is put back.

``<pin>.last-good`` holds the last good content on disk, so that an edit made while
the watcher was stopped is still noticed at start, and a broken file can be restored
after a restart. To keep the pair consistent across a crash, a write stages the new
pin in a same-dir temp file first, then replaces ``last-good``, then renames the staged
file over the pin. A crash between the two renames leaves the staged file behind with
the same bytes as ``last-good``; the next start finishes that rename instead of taking
the older pin for a hand edit.

Roles: the daemon owns the file (``role="watcher"``: detects, adopts, quarantines,
restores). CLI commands edit it like a human does (``role="operator"``): same lock and
validation, but they never restore or touch ``last-good``, so the running watcher sees
their change as an operator edit and announces it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from filelock import Timeout, UnixFileLock

from watcher.pins import schema as pinfile
from watcher.pins.check import PinFileInvalid, PinValidator, check_text
from watcher.pins.reads import AdoptedEdit, EditOutcome, NoChange, PinRead, RejectedEdit
from watcher.pins.schema import PinFile
from watcher.support.atomic import atomic_write_bytes, fsync_dir, keep_ownership, write_fully

PIN_FILENAME = "fallback-state.json"
PIN_MODE = 0o640
LOCK_MODE = 0o660  # group members (operators) may take the lock with flock(1)
# Seconds; then filelock.Timeout: the CLI reports it, the daemon keeps waiting.
DEFAULT_LOCK_TIMEOUT = 10.0
# filelock polls a non-blocking flock; flock(1) waiters block in the kernel and get the
# lock first on release. A short poll keeps the watcher from being starved by them.
LOCK_POLL_INTERVAL = 0.005

__all__ = [
    "PIN_FILENAME",
    "PIN_MODE",
    "AdoptedEdit",
    "EditOutcome",
    "NoChange",
    "PinFileInvalid",
    "PinRead",
    "PinStore",
    "PinTransaction",
    "RejectedEdit",
]


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _make_lock(path: Path, timeout: float) -> UnixFileLock:
    try:
        # Never fall back to a soft lock (flock(1) would not see it) and never unlink
        # the lock file (that splits waiters across inodes).
        return UnixFileLock(
            path,
            timeout=timeout,
            mode=LOCK_MODE,
            fallback_to_soft=False,
            preserve_lock_file=True,
            poll_interval=LOCK_POLL_INTERVAL,
        )
    except TypeError:  # filelock < 4: no such options, and neither behaviour exists
        return UnixFileLock(path, timeout=timeout, mode=LOCK_MODE)


class PinStore:
    """The pin file ``path`` with its lock ``<path>.lock`` and ``<path>.last-good``."""

    def __init__(
        self,
        path: Path | str,
        *,
        validator: PinValidator | None = None,
        role: Literal["watcher", "operator"] = "watcher",
        clock: Callable[[], float] = time.time,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.last_good_path = self.path.with_name(self.path.name + ".last-good")
        self.validator = validator
        self.role = role
        self._clock = clock
        self._flock = _make_lock(self.lock_path, lock_timeout)
        self._mutex = threading.RLock()
        self._in_txn = False
        self._loaded = False
        self._known: bytes | None = None  # bytes on disk that we wrote or accepted
        self._good: PinFile = PinFile()
        self._good_bytes: bytes | None = None  # content of last-good

    # -- public API ------------------------------------------------------------------

    def try_hold(self) -> bool:
        """Take ``<pin>.lock`` now if it is free, without waiting; True when held.

        A hold nests with ``locked()`` (the flock is counted), so a caller on an event
        loop can wait for the lock asynchronously, polling this, and then run its
        synchronous read-modify-write without blocking. Pair with ``release_hold()``."""
        try:
            self._flock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release_hold(self) -> None:
        self._flock.release()

    @contextlib.contextmanager
    def locked(self) -> Iterator[PinTransaction]:
        """Hold the lock for one read-modify-write; staged writes land once, at the end.

        Raises ``filelock.Timeout`` if the lock is not free within ``lock_timeout``.
        An exception inside the block discards the staged write.
        """
        with self._mutex:
            if self._in_txn:
                raise RuntimeError("PinStore.locked() is not reentrant")
            with self._flock:
                self._in_txn = True
                txn = PinTransaction(self)
                try:
                    yield txn
                    txn._commit()
                finally:
                    self._in_txn = False

    def read(self) -> PinRead:
        """Lock, check for a hand edit, return the current state."""
        with self.locked() as txn:
            return txn.read()

    def update(self, fn: Callable[[PinRead], PinFile | None]) -> PinRead:
        """Read-modify-write in one locked step; ``fn`` returns the new state or None."""
        with self.locked() as txn:
            current = txn.read()
            new = fn(current)
            if new is not None:
                txn.write(new)
            return current

    def write_keeping_edits(self, pins: PinFile, text: bytes | None = None) -> bool:
        """Write the watcher's state ``pins`` without losing a hand edit made since the
        last ``read()``. Returns True if the file now holds ``pins``; False if a hand edit
        waits on disk for the next ``read()`` to judge.

        The daemon reads the file (adopting edits) before it decides and writes after it,
        in a second locked step; ``flock <pin>.lock jq ...`` can land in between. Writing
        ``pins`` over that edit would lose it unseen, and deciding on the edited file as
        it stands would take every change the watcher made meanwhile for the operator
        reverting it. So the edit is rebased: each agent whose record the edit changed
        (compared with what this store last wrote) keeps the edited record; every other
        agent, and the model section, get ``pins``. That goes on disk, while this store
        (and ``last-good``) record ``pins`` as written, so the next ``read()`` sees exactly
        the operator's changes as a hand edit; so does the next start after a crash. An
        invalid edit, or a deleted file, is left for ``read()`` to quarantine or restore.
        """
        with self.locked() as txn:
            if self.role != "watcher":
                txn.read()
                txn.write(pins, text)
                return True
            if not self._loaded and not self._load_baseline_if_edited():
                txn.read()  # nothing edited while stopped: the ordinary first read
            disk = _read_bytes(self.path)
            if disk == self._known:
                txn.read()
                txn.write(pins, text)
                return True
            if disk is None:
                return False
            try:
                edited = check_text(disk, self.validator)
            except PinFileInvalid:
                return False
            agents = dict(pins.agents)
            for agent_id, pin in edited.agents.items():
                if agent_id in agents and self._good.agents.get(agent_id) != pin:
                    agents[agent_id] = pin
            rebased = pins.model_copy(update={"agents": agents})
            if rebased == pins:  # formatting or model-section edits only: nothing to adopt
                txn.read()
                txn.write(pins, text)
                return True
            ours = pinfile.dumps(pins).encode()
            data = pinfile.dumps(rebased).encode()
            check_text(ours)
            check_text(data, self.validator)
            # Pin first: a crash before last-good follows leaves the rebased edit judged
            # against the older last-good, and the operator's changes are still all it adds.
            atomic_write_bytes(self.path, data, PIN_MODE, keep_owner=True)
            atomic_write_bytes(self.last_good_path, ours, PIN_MODE, keep_owner=True)
            self._known, self._good, self._good_bytes = ours, pins, ours
            return False

    def _load_baseline_if_edited(self) -> bool:
        """First use, from ``write_keeping_edits``: if the pin file differs from a valid
        ``last-good`` (an edit made while the watcher was stopped), take ``last-good`` as
        what this store wrote without judging the edit, and return True. Otherwise change
        nothing and return False (the ordinary first read handles those cases)."""
        self._finish_interrupted_write()
        baseline_bytes = _read_bytes(self.last_good_path)
        disk = _read_bytes(self.path)
        if baseline_bytes is None or disk is None or disk == baseline_bytes:
            return False
        try:
            baseline = check_text(baseline_bytes)
        except PinFileInvalid:
            return False
        self._loaded = True
        self._good, self._good_bytes, self._known = baseline, baseline_bytes, baseline_bytes
        return True

    @property
    def last_good(self) -> PinFile:
        """The last state this store wrote or accepted (empty before the first read)."""
        return self._good

    # -- internals (called with the lock held) -----------------------------------------

    def _detect(self) -> PinRead:
        if self.role == "operator":
            return self._detect_as_operator()
        if not self._loaded:
            return self._load_at_start()
        disk = _read_bytes(self.path)
        if disk == self._known:
            return PinRead(self._good, NoChange())
        if disk is None:
            restored = self._restore()
            edit = RejectedEdit(
                "the pin file was deleted; the last good state was restored", None, restored
            )
            return PinRead(restored, edit)
        return self._judge_edit(disk, previous=self._good)

    def _detect_as_operator(self) -> PinRead:
        disk = _read_bytes(self.path)
        if disk is None:
            pins = PinFile()
        elif disk == self._known:
            pins = self._good
        else:
            pins = check_text(disk, self.validator)  # raises PinFileInvalid
        self._known, self._good = disk, pins
        return PinRead(pins, NoChange())

    def _load_at_start(self) -> PinRead:
        self._finish_interrupted_write()
        self._loaded = True
        baseline_bytes = _read_bytes(self.last_good_path)
        baseline: PinFile | None = None
        if baseline_bytes is not None:
            try:
                baseline = check_text(baseline_bytes)
            except PinFileInvalid:
                baseline_bytes = None  # a damaged sidecar is no baseline; the pin decides
        if baseline is not None:
            self._good, self._good_bytes = baseline, baseline_bytes
        disk = _read_bytes(self.path)
        if disk is None:
            if baseline_bytes is not None:
                self._restore()  # a first write cut short, or a deletion while stopped
            return PinRead(self._good, NoChange())  # missing file: empty until first write
        if disk == baseline_bytes:
            self._known = disk
            return PinRead(self._good, NoChange())
        return self._judge_edit(disk, previous=baseline)

    def _judge_edit(self, disk: bytes, previous: PinFile | None) -> PinRead:
        try:
            pins = check_text(disk, self.validator)
        except PinFileInvalid as exc:
            quarantined = self._quarantine(disk)
            restored = self._restore()
            return PinRead(restored, RejectedEdit(str(exc), quarantined, restored))
        self._known = disk
        self._good = pins
        self._good_bytes = disk
        atomic_write_bytes(self.last_good_path, disk, PIN_MODE, keep_owner=True)
        if previous is not None and pins == previous:
            return PinRead(pins, NoChange())  # reformatted only: nothing was decided
        return PinRead(pins, AdoptedEdit(pins, previous))

    def _quarantine(self, text: bytes) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        base = f"{self.path.name}.rejected-{stamp}"
        target = self.path.with_name(base)
        n = 1
        while target.exists():
            target = self.path.with_name(f"{base}-{n}")
            n += 1
        atomic_write_bytes(target, text, PIN_MODE, keep_owner=True)
        return target

    def _restore(self) -> PinFile:
        """Put the last good content back on disk (an empty state if there never was one)."""
        if self._good_bytes is None:
            self._good = PinFile()
            self._good_bytes = pinfile.dumps(self._good).encode()
            atomic_write_bytes(self.last_good_path, self._good_bytes, PIN_MODE, keep_owner=True)
        atomic_write_bytes(self.path, self._good_bytes, PIN_MODE, keep_owner=True)
        self._known = self._good_bytes
        return self._good

    def _staged_prefix(self) -> str:
        return f".{self.path.name}.staged-"

    def _finish_interrupted_write(self) -> None:
        """Complete or discard writes that a crash cut short (see the module docstring).

        Runs at start with the lock held, so no temp file here belongs to a live writer:
        every writer (this store, an operator-role store, ``scripts/pin-edit``) makes
        its temp files under the same lock.
        """
        name = self.path.name
        for pattern in (f".{name}.tmp-*", f".{name}.last-good.tmp-*", f".{name}.pin-edit.*"):
            for leftover in self.path.parent.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        last_good = _read_bytes(self.last_good_path)
        finished = False
        for staged in sorted(self.path.parent.glob(self._staged_prefix() + "*")):
            content = _read_bytes(staged)
            if (
                not finished
                and content is not None
                and content == last_good
                and _read_bytes(self.path) != last_good
            ):
                os.replace(staged, self.path)
                finished = True
            else:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
        if finished:
            fsync_dir(self.path.parent)

    def _write(self, pins: PinFile, text: bytes | None = None) -> None:
        """``text``: the file's text as a ``watcher.pins.view.PinView`` made it, every
        record in it validated there; otherwise it is made and validated here."""
        data = pinfile.dumps(pins).encode() if text is None else text
        if data == self._known:  # already on disk, and checked when it was written
            return
        if text is None:
            check_text(data)  # never put an invalid file in front of the gateway
        if self.role == "operator":
            atomic_write_bytes(self.path, data, PIN_MODE, keep_owner=True)
        else:
            staged = self.path.with_name(
                f"{self._staged_prefix()}{os.getpid()}-{threading.get_ident()}"
            )
            _write_synced(staged, data, self.path)
            try:
                # One directory fsync after both renames: they are in the same directory,
                # so a crash (or power loss: the journalling filesystems order them)
                # leaves at most the second undone, which the next start finishes.
                atomic_write_bytes(
                    self.last_good_path, data, PIN_MODE, sync_dir=False, keep_owner=True
                )
                os.replace(staged, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
                raise
            fsync_dir(self.path.parent)
            self._good_bytes = data
        self._known = data
        self._good = pins


def _write_synced(path: Path, data: bytes, like: Path) -> None:
    """``data`` into a new file ``path``, fsync'd, owned like ``like`` (which it will
    replace)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PIN_MODE)
    try:
        os.fchmod(fd, keep_ownership(fd, like, PIN_MODE))
        write_fully(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class PinTransaction:
    """One locked read-modify-write. Read first; writes are staged and coalesced."""

    def __init__(self, store: PinStore) -> None:
        self._store = store
        self._read: PinRead | None = None
        self._staged: PinFile | None = None
        self._staged_text: bytes | None = None

    def read(self) -> PinRead:
        """The current state and what happened to the file since this store last saw it."""
        if self._read is None:
            self._read = self._store._detect()
        return self._read

    def write(self, pins: PinFile, text: bytes | None = None) -> None:
        """Stage ``pins`` (with its ``text`` when a ``PinView`` made and validated it);
        the last staged state is written once when the block ends."""
        if self._read is None:
            raise RuntimeError("read() the pin file before writing it, or a hand edit is lost")
        self._staged = pins
        self._staged_text = text

    def _commit(self) -> None:
        if self._staged is not None:
            self._store._write(self._staged, self._staged_text)
