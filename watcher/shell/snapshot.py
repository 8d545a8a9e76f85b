"""``core-state.json``: the crash protocol's one file.

Each applied batch first writes it atomically: the core state, the source position,
and the effects still to carry out (``Pending``: alerts with sequence numbers, audit
records with the audit sequence they must reach, a pin write, mutes). On restart it is
the authority: the source resumes from its position (``SnapshotPosition``) and pending
effects are replayed, skipping what already landed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.core.state import State, to_json
from watcher.source import PositionStore, SavedPosition
from watcher.support.atomic import atomic_write_text

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


@dataclass
class Pending:
    """Effects decided and persisted but maybe not yet carried out."""

    alerts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    audit_target: int = 0  # the audit log's seq once ``audit`` has landed
    write_pins: bool = False
    mutes: list[tuple[str, float]] = field(default_factory=list)  # operator /mute

    def to_json(self) -> dict[str, Any]:
        return {
            "alerts": [[seq, a] for seq, a in self.alerts],
            "audit": self.audit,
            "audit_target": self.audit_target,
            "write_pins": self.write_pins,
            "mutes": [[key, until] for key, until in self.mutes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        return cls(
            alerts=[(int(seq), a) for seq, a in data.get("alerts", [])],
            audit=list(data.get("audit", [])),
            audit_target=int(data.get("audit_target", 0)),
            write_pins=bool(data.get("write_pins", False)),
            mutes=[(str(key), float(until)) for key, until in data.get("mutes", [])],
        )

    def __bool__(self) -> bool:
        return bool(self.alerts or self.audit or self.write_pins or self.mutes)


class SnapshotError(ValueError):
    """``core-state.json`` cannot be read; the message names the file and why."""


class Snapshot:
    """``core-state.json``: the full core state, the source position, pending effects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise SnapshotError(f"{path} is not valid JSON ({exc})") from None
            if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
                version = data.get("version") if isinstance(data, dict) else None
                raise SnapshotError(f"{path}: unknown snapshot version {version!r}")
            self.data = data

    @property
    def position(self) -> dict[str, Any] | None:
        pos = self.data.get("position")
        return pos if isinstance(pos, dict) else None

    def write(
        self,
        state: State,
        position: dict[str, Any] | None,
        pending: Pending,
        alert_seq: int,
        extra: dict[str, Any],
    ) -> None:
        self.data = {
            "version": SNAPSHOT_VERSION,
            "state": to_json(state),
            "position": position,
            "pending": pending.to_json(),
            "alert_seq": alert_seq,
            **extra,
        }
        atomic_write_text(self.path, json.dumps(self.data, separators=(",", ":")), mode=0o640)


class SnapshotPosition(PositionStore):
    """The source's position lives in the snapshot, written with the state it led to,
    so state and position can never disagree after a crash."""

    def __init__(self, snapshot: Snapshot, source: str) -> None:
        super().__init__(snapshot.path, source)
        self.snapshot = snapshot

    def load(self) -> SavedPosition | None:
        pos = self.snapshot.position
        if not pos or pos.get("source") != self.source or not pos.get("position"):
            return None
        return SavedPosition(pos["position"], pos.get("realtime"), self.source)

    def save(self, position: str, realtime: float | None) -> None:
        """The daemon writes positions in the snapshot; the source's commit is a no-op."""


