"""The audit log: an append-only, hash-chained JSONL record of every decision.

One JSON object per line, in canonical form (sorted keys, no spaces, UTF-8):

    {"data":{...},"hash":"<hex>","prev":"<hex>","seq":7,"ts":"2026-05-20T14:38:00Z","type":"FALLBACK_FIRED"}

- ``seq`` counts from 1 with no gaps; ``ts`` is the event time (UTC, second precision);
- ``type`` is a transition type or another shell event; ``data`` is free, by
  convention ``before``/``after`` model ids, ``agents``, ``cause``, ``evidence``
  (journal cursor or probe id), ``policy_version`` and ``actor``. Never a secret;
- ``prev`` is the previous record's ``hash`` (64 zeros for the first record);
- ``hash`` is the SHA-256 of the record's canonical JSON without the ``hash`` key.

Editing, deleting, inserting or reordering lines breaks the chain, and
:func:`verify` names the first bad line. Deleting records at the end leaves a valid
shorter chain, so each flush also records the head (``seq`` and ``hash``) in
``<log>.head``; a log that ends before its head is reported as truncated.

Appends are written and fsync'd per batch: ``with log.batch(): ...`` issues one fsync
for all the records appended inside it; a lone ``append`` is its own batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.pins.schema import iso
from watcher.support.atomic import atomic_write_bytes, fsync_dir, write_fully

AUDIT_FILENAME = "audit.jsonl"
# The record schema's contract version (docs/audit.schema.json, README "Audit log"):
# a field may be added within a version; removing, renaming or retyping one bumps it.
AUDIT_SCHEMA_VERSION = 1
AUDIT_MODE = 0o640
GENESIS = "0" * 64
TAIL_REPAIRED = "AUDIT_TAIL_REPAIRED"  # record type noting a torn last line dropped at open
TORN_WRITE = "the last line is incomplete (torn write)"
CHAIN_RESTARTED = "AUDIT_CHAIN_RESTARTED"  # first record after a damaged log was set aside
_TAIL_READ = 64 * 1024


def canonical(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts: str
    type: str
    data: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "hash": self.hash,
            "prev": self.prev,
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
        }

    def line(self) -> str:
        return canonical(self.to_json()) + "\n"


class AuditLogBroken(RuntimeError):
    """The existing log does not verify; refuse to extend a chain we cannot trust."""


class AuditLog:
    """Appends hash-chained records to ``path`` (created mode 0640 if missing).

    One writer per file (the daemon). Opening reads the tail to continue the chain; a
    torn last line (a crash mid-append) is dropped and the drop itself is recorded.
    """

    def __init__(self, path: Path | str, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.set_aside_as: str | None = None  # a damaged log renamed by open_or_restart
        self._clock = clock
        self._mutex = threading.RLock()
        self._pending: list[AuditRecord] = []
        self._depth = 0
        self._seq, self._prev, torn = self._open_tail()
        self.repaired_at_open = 0  # records appended at open: the daemon's recovery counts them
        if torn is not None:
            self.repaired_at_open = 1
            self.append(TAIL_REPAIRED, {"dropped_bytes": len(torn), "dropped_text": torn[:4096]})

    @classmethod
    def open_or_restart(
        cls, path: Path | str, *, clock: Any = time.time,
        anchor: tuple[int, str | None] | None = None,
    ) -> tuple[AuditLog, str | None]:
        """Open the log; if it does not verify, set it aside and start a new chain.

        The daemon must not die because someone damaged its audit log, and must not
        extend a chain it cannot trust. The damaged file (and its head) are renamed to
        ``<log>.broken-<UTC time>`` and the new chain's first record says so. Returns the
        log and the problem (None when the old log was fine), for an alert.
        """
        path = Path(path)
        try:
            result = verify(path, anchor)
        except FileNotFoundError:
            return cls(path, clock=clock), None
        problem = None if result.ok else result.sentence()
        # A torn last line is what a crash mid-append leaves, not damage: opening drops
        # it and records the drop, and the chain before it goes on.
        if problem is None or result.problem == TORN_WRITE:
            problem = None
            try:
                return cls(path, clock=clock), None
            except AuditLogBroken as exc:
                problem = str(exc)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
        aside = path.with_name(f"{path.name}.broken-{stamp}")
        n = 1
        while aside.exists():
            aside = path.with_name(f"{path.name}.broken-{stamp}-{n}")
            n += 1
        if path.exists():
            os.replace(path, aside)
        head_path = path.with_name(path.name + ".head")
        if head_path.exists():
            os.replace(head_path, aside.with_name(aside.name + ".head"))
        fsync_dir(path.parent)
        log = cls(path, clock=clock)
        log.append(CHAIN_RESTARTED, {"broken_file": aside.name, "problem": problem})
        log.set_aside_as = aside.name
        return log, problem

    @property
    def seq(self) -> int:
        """Sequence number of the last record appended (0 for an empty log)."""
        return self._seq

    @property
    def head(self) -> str:
        return self._prev

    def _open_tail(self) -> tuple[int, str, str | None]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0, GENESIS, None
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - _TAIL_READ)
            chunk = os.pread(fd, size - start, start)
            torn: str | None = None
            if chunk and not chunk.endswith(b"\n"):
                cut = chunk.rfind(b"\n")
                if cut < 0 and start > 0:
                    raise AuditLogBroken(f"{self.path}: last line is longer than {_TAIL_READ}")
                torn_bytes = chunk[cut + 1 :]
                torn = torn_bytes.decode("utf-8", "replace")
                os.ftruncate(fd, size - len(torn_bytes))
                os.fsync(fd)
                chunk = chunk[: cut + 1]
            lines = chunk.splitlines()
            if start > 0:
                lines = lines[1:]  # the first line of the window may be partial
            if not lines:
                if start > 0:
                    raise AuditLogBroken(f"{self.path}: last line is longer than {_TAIL_READ}")
                return 0, GENESIS, torn
            last = json.loads(lines[-1])
            if record_hash(last) != last.get("hash"):
                raise AuditLogBroken(f"{self.path}: the last record does not match its hash")
            head = _read_head(self.path)
            if head is not None and (
                last["seq"] < head[0] or (last["seq"] == head[0] and last["hash"] != head[1])
            ):
                raise AuditLogBroken(
                    f"{self.path}: the log ends at seq {last['seq']} but its head file "
                    f"says seq {head[0]} was written"
                )
            return int(last["seq"]), str(last["hash"]), torn
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditLogBroken(f"{self.path}: unreadable last record: {exc}") from exc
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Append several records with a single write and fsync at the end."""
        with self._mutex:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.flush()

    def append(
        self, type: str, data: Mapping[str, Any] | None = None, ts: float | None = None
    ) -> AuditRecord:
        """Chain a record; durable when this returns, or at the end of the enclosing batch."""
        with self._mutex:
            body: dict[str, Any] = {
                "data": dict(data or {}),
                "prev": self._prev,
                "seq": self._seq + 1,
                "ts": iso(self._clock() if ts is None else ts),
                "type": str(type),
            }
            # Round-trip so the stored data is exactly what JSON can carry.
            body = json.loads(canonical(body))
            record = AuditRecord(
                seq=body["seq"],
                ts=body["ts"],
                type=body["type"],
                data=body["data"],
                prev=body["prev"],
                hash=record_hash(body),
            )
            self._pending.append(record)
            self._seq, self._prev = record.seq, record.hash
            if self._depth == 0:
                self.flush()
            return record

    def flush(self) -> None:
        with self._mutex:
            if not self._pending:
                return
            data = "".join(r.line() for r in self._pending).encode("utf-8")
            created = not self.path.exists()
            fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, AUDIT_MODE
            )
            try:
                if created:
                    os.fchmod(fd, AUDIT_MODE)
                write_fully(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)
            last = self._pending[-1]
            self._pending.clear()
            # No directory fsync: a head a crash left older than the log still verifies
            # (only one ahead of it proves a truncation); the batch's pin write syncs
            # the same directory. One fsync fewer per batch.
            head = canonical({"hash": last.hash, "seq": last.seq}) + "\n"
            atomic_write_bytes(self.head_path, head.encode(), AUDIT_MODE, sync_dir=False)


# -- verification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int  # records checked and found good (before the first bad line)
    head_seq: int
    head_hash: str
    bad_line: int | None = None  # 1-based line number of the first bad line
    problem: str | None = None
    note: str | None = None  # what this check could not prove (ok or not)

    def sentence(self) -> str:
        if self.ok:
            return (
                f"audit log OK: {self.records} records, chain intact, "
                f"head seq {self.head_seq} hash {self.head_hash[:16]}"
                + (f". Note: {self.note}" if self.note else "")
            )
        where = f"line {self.bad_line}" if self.bad_line is not None else "end of file"
        return (
            f"audit log BROKEN at {where}: {self.problem} ({self.records} records good before it)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "bad_line": self.bad_line,
            "problem": self.problem,
            "note": self.note,
        }


def verify(path: Path | str, anchor: tuple[int, str | None] | None = None) -> VerifyResult:
    """Walk the whole chain; report the first line that is edited, missing or out of place.

    ``anchor``: ``(seq, hash)`` of a record known, from elsewhere, to have been written
    (the daemon keeps it in ``core-state.json``). Deleting records at the end *and* the
    head file leaves a valid shorter chain that only an anchor can expose; with an
    anchor a missing head file is damage too. Without one, a missing head is only a
    ``note``: the end of the log cannot be proven. Raises ``FileNotFoundError`` if the
    log does not exist (and nothing says it should).
    """
    path = Path(path)
    seq, prev, good = 0, GENESIS, 0

    def broken(line_no: int | None, problem: str) -> VerifyResult:
        return VerifyResult(False, good, seq, prev, line_no, problem)

    try:
        head = _read_head(path)
    except ValueError as exc:
        return broken(None, str(exc))
    anchored = anchor is not None and anchor[0] > 0
    if head is not None and not path.exists():
        return broken(None, f"the log is missing but its head says seq {head[0]} was written")
    if anchored and not path.exists():
        assert anchor is not None
        return broken(None, f"the log is missing but the daemon's state says seq {anchor[0]} "
                            "was written")
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return broken(line_no, TORN_WRITE)
            try:
                text = raw[:-1].decode("utf-8")
                rec = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return broken(line_no, f"not a JSON record ({exc})")
            if not isinstance(rec, dict) or set(rec) != {
                "data",
                "hash",
                "prev",
                "seq",
                "ts",
                "type",
            }:
                return broken(line_no, "not an audit record (wrong keys)")
            if record_hash(rec) != rec["hash"]:
                return broken(line_no, f"record seq {rec['seq']} was edited (hash mismatch)")
            if canonical(rec) != text:
                return broken(line_no, f"record seq {rec['seq']} was reformatted")
            if rec["prev"] != prev:
                return broken(
                    line_no,
                    f"record seq {rec['seq']} does not follow seq {seq} "
                    "(a record before it was deleted, inserted or moved)",
                )
            if rec["seq"] != seq + 1:
                return broken(line_no, f"sequence jumps from {seq} to {rec['seq']}")
            if (anchor is not None and anchor[1] is not None and rec["seq"] == anchor[0]
                    and rec["hash"] != anchor[1]):
                return broken(line_no, f"record seq {rec['seq']} is not the one the daemon "
                                       "recorded as written (the log was replaced)")
            seq, prev, good = rec["seq"], rec["hash"], good + 1
    if anchored:
        assert anchor is not None
        if seq < anchor[0]:
            return broken(
                None,
                f"the log ends at seq {seq} but the daemon's state says seq {anchor[0]} was "
                "written: records at the end were deleted (or the daemon was killed before "
                "writing them: it does on its next start)",
            )
        if head is None and seq > 0:
            return broken(None, "the head file is missing (it is rewritten at every flush; "
                                "it was deleted)")
    if head is not None:
        head_seq, head_hash = head
        if seq < head_seq:
            return broken(
                None,
                f"the log ends at seq {seq} but seq {head_seq} was written: records "
                "at the end were deleted",
            )
        if seq == head_seq and prev != head_hash:
            return broken(None, f"record seq {seq} is not the one recorded as the head")
    note = None
    if anchor is None:
        note = ("no head file beside the log: records deleted at its end cannot be detected"
                if head is None else
                "checked against its head file only: deleting the last records and the head "
                "file together is detected only with --state-dir (core-state.json)")
    return VerifyResult(True, good, seq, prev, note=note)


def _read_head(path: Path) -> tuple[int, str] | None:
    """The head recorded at the last flush, None if there is none; ValueError if damaged."""
    head_path = path.with_name(path.name + ".head")
    try:
        head = json.loads(head_path.read_text("utf-8"))
        return int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        return None
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{head_path} is damaged") from exc


def tail(path: Path | str, n: int = 20) -> list[dict[str, Any]]:
    """The last ``n`` records, parsed (for humans; does not verify)."""
    lines: list[bytes] = []
    with Path(path).open("rb") as fh:
        for raw in fh:
            lines.append(raw)
            if len(lines) > n:
                lines.pop(0)
    out = []
    for raw in lines:
        try:
            out.append(json.loads(raw))
        except json.JSONDecodeError:
            out.append({"unparsed": raw.decode("utf-8", "replace").rstrip("\n")})
    return out


def anchor_of(
    snapshot: Mapping[str, Any], *, pending: bool = False
) -> tuple[int, str | None] | None:
    """What ``core-state.json`` says the audit log holds: ``(seq, hash)`` of the last
    record that was durable when it was written. ``pending``: also the records that
    snapshot still had to append (``(target seq, None)`` when beyond): a stopped daemon
    has written them, unless it was killed in between (it writes them on its restart).
    The daemon's own check at start-up must not count them; ``audit verify`` does."""
    head = snapshot.get("audit_head")
    if not isinstance(head, Mapping):
        return None
    try:
        seq, digest = int(head["seq"]), str(head["hash"])
    except (KeyError, TypeError, ValueError):
        return None
    work = snapshot.get("pending")
    target = work.get("audit_target", 0) if pending and isinstance(work, Mapping) else 0
    if isinstance(target, int) and target > seq:
        return target, None
    return seq, digest
