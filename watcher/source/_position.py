"""The saved read position: a small JSON file in the watcher's state directory.

It holds the position of the last batch the daemon *applied* (journal cursor or
``inode:offset``) and that entry's realtime, which is the fallback when the cursor's
entry has since been vacuumed. Written with ``watcher.support.atomic`` so a crash leaves the
old position or the new one, never a torn file. It is not the pin file: the pin file
is the operator's, the position is only the reader's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from watcher.support.atomic import atomic_write_text

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedPosition:
    position: str
    realtime: float | None
    source: str


class PositionStore:
    """Loads and atomically saves one source's ``SavedPosition``."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = Path(path)
        self.source = source

    @classmethod
    def in_state_dir(cls, state_dir: Path, source: str) -> PositionStore:
        """``<state_dir>/position-<source>.json``, one file per configured source."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("_") or "source"
        return cls(Path(state_dir) / f"position-{slug[:80]}.json", source)

    def load(self) -> SavedPosition | None:
        """The saved position, or ``None`` when there is none or it is unreadable.

        A corrupt file is not fatal: the source falls back to its ``start_at``.
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            position = data["position"]
            realtime = data.get("realtime")
            if not isinstance(position, str) or not position:
                return None
            if realtime is not None and not isinstance(realtime, int | float):
                realtime = None
            return SavedPosition(position, realtime, str(data.get("source", self.source)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, position: str, realtime: float | None) -> None:
        text = json.dumps(
            {"version": FORMAT_VERSION, "source": self.source, "position": position,
             "realtime": realtime},
            indent=2, sort_keys=True,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, text + "\n", mode=0o640)
