"""The ledger on disk: ``<state_dir>/ledger.json``, replaced atomically on every change.

It lives in the breaker's own state directory (never the watcher's). A ledger that
cannot be read is not silently replaced with an empty one: it holds what a trip
removed from ``openclaw.json``, and losing it would lose the way back. The breaker
stops and names the file instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from watcher.breaker.ledger import Ledger
from watcher.support.atomic import atomic_write_text

LEDGER_NAME = "ledger.json"


class LedgerError(Exception):
    """The ledger file exists but cannot be read; the message says what to do."""


class LedgerStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LEDGER_NAME

    def load(self) -> Ledger | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LedgerError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        try:
            return Ledger.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"{self.path} is not a valid ledger ({exc}). It records what trips removed "
                f"from openclaw.json; inspect it, restore openclaw.json from the newest "
                f"openclaw.json.breaker-*.bak if needed, then move the ledger aside"
            ) from exc

    def save(self, ledger: Ledger) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(ledger.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
        atomic_write_text(self.path, text + "\n", mode=0o640)
